"""Conftests and plugins that reach into pytest's provider get what pytest gives them.

Each scenario runs once with pytest-crosscache and once with pytest's
builtin provider (``-p no:crosscache``), through the ``twin`` fixture, and
asserts the same output (tests selected, outcomes, warnings), the same exit
code and, where it writes, the same files.
"""

from __future__ import annotations

import pytest

from conftest import Twin
from conftest import header_cachedir

LONG = "x" * 300


class TestUnstorableKeys:
    def test_same_warning_as_pytest(self, twin: Twin) -> None:
        twin.pytester.makepyfile(
            test_keys=f"""
            def test_long(cache):
                cache.set("plugin/{LONG}", 1)
                cache.set("plugin/{LONG}/inner", 1)
                assert cache.get("plugin/{LONG}", "default") == "default"
                assert cache.get("plugin/{LONG}/inner", "default") == "default"
            """
        )
        lines = twin.check("-W", "always::pytest.PytestCacheWarning")
        # The warning names the value's path and points at the caller's line.
        assert any(
            "test_keys.py:2: PytestCacheWarning: cache could not write path" in line
            and "File name too long" in line
            for line in lines
        ), lines
        assert any(
            "test_keys.py:3: PytestCacheWarning: could not create cache path" in line
            for line in lines
        ), lines

    @pytest.mark.parametrize("ignored", [True, False])
    def test_filterwarnings_aimed_at_the_callers_module(
        self, twin: Twin, ignored: bool
    ) -> None:
        pytester = twin.pytester
        pytester.makepyfile(
            helper=f"""
            def store(cache):
                cache.set("plugin/{LONG}", 1)
            """,
            test_filter="""
            import helper

            def test_store(cache):
                helper.store(cache)
            """,
        )
        ignore = "    ignore::pytest.PytestCacheWarning:helper\n" if ignored else ""
        pytester.makeini(f"[pytest]\nfilterwarnings =\n    error\n{ignore}")
        # Tracebacks show each provider's own code; the rest must agree.
        result = twin.run("--tb=no", "-rf")
        result.assert_same()
        if ignored:
            result.ours.assert_outcomes(passed=1)
        else:
            result.ours.assert_outcomes(failed=1)


PROJECT = {
    "test_a": """
        def test_pass():
            pass

        def test_fail():
            assert 0
        """,
    "test_b": """
        def test_b1():
            pass

        def test_b2(cache):
            cache.set("mine/x", 1)
        """,
}


@pytest.fixture
def project(twin: Twin) -> Twin:
    twin.pytester.makepyfile(**PROJECT)
    return twin


class TestNoCacheprovider:
    """``-p no:cacheprovider``: no cache at all, as with pytest alone."""

    def test_nothing_written_nothing_offered(self, project: Twin) -> None:
        project.pytester.makeconftest(
            """
            def pytest_report_header(config):
                pm = config.pluginmanager
                return [
                    f"has cacheprovider: {pm.hasplugin('cacheprovider')}",
                    f"has config.cache: {hasattr(config, 'cache')}",
                    f"lf/nf/stepwise: {[pm.has_plugin(n) for n in ('lfplugin', 'nfplugin', 'stepwise')]}",
                ]
            """
        )
        off = ("-p", "no:cacheprovider")
        result = project.run(*off, "-rA")
        result.assert_same()
        # The test using the cache fixture errors: there is no such fixture.
        result.ours.assert_outcomes(passed=2, failed=1, errors=1)
        result.ours.stdout.fnmatch_lines(
            [
                "has cacheprovider: False",
                "has config.cache: False",
                "lf/nf/stepwise: [False, False, False]",
                "*fixture 'cache' not found*",
            ]
        )
        assert project.assert_same_files() == {}
        assert list(project.pytester.path.glob(".cache-*")) == []

    @pytest.mark.parametrize(
        "option",
        [
            "--lf",
            "--ff",
            "--nf",
            "--sw",
            "--sw-skip",
            "--cache-clear",
            "--cache-show",
            "--lfnf=none",
            # Extras of pytest-crosscache are off too.
            "--cache-backend=redis://localhost",
            "--sf",
        ],
    )
    def test_options_unknown(self, project: Twin, option: str) -> None:
        result = project.run("-p", "no:cacheprovider", option)
        assert result.ours.ret == result.builtin.ret == pytest.ExitCode.USAGE_ERROR
        assert result.ours.errlines == result.builtin.errlines
        result.ours.stderr.fnmatch_lines(["*unrecognized arguments: --*"])

    def test_ini_keys_unknown(self, project: Twin) -> None:
        project.pytester.makeini(
            "[pytest]\ncache_dir = somewhere\ncache_lock_timeout = 3\n"
            "cache_backend = redis://localhost\ncache_namespace = ns\n"
        )
        result = project.run("-p", "no:cacheprovider", "-W", "default")
        result.assert_same()
        result.ours.stdout.fnmatch_lines(["*Unknown config option: cache_backend*"])
        assert not (project.pytester.path / "somewhere").exists()
        # --strict-config turns it into an error, as with pytest alone.
        result = project.run("-p", "no:cacheprovider", "--strict-config")
        assert result.ours.ret == result.builtin.ret == pytest.ExitCode.USAGE_ERROR

    def test_predicate_for_extras(self, pytester: pytest.Pytester) -> None:
        pytester.makeconftest(
            """
            from pytest_crosscache.cache import cache_enabled

            def pytest_report_header(config):
                return f"cache enabled: {cache_enabled(config)}"
            """
        )
        pytester.makepyfile("def test_ok(): pass")
        pytester.runpytest().stdout.fnmatch_lines(["cache enabled: True"])
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.stdout.fnmatch_lines(["cache enabled: False"])

    def test_no_stepwise_alone_turns_off_only_sw(self, project: Twin) -> None:
        off = ("-p", "no:stepwise")
        result = project.run(*off, "--sw")
        assert result.ours.ret == result.builtin.ret == pytest.ExitCode.USAGE_ERROR
        project.check(*off)
        lines = project.check(*off, "--lf")
        assert "run-last-failure: rerun previous 1 failure (skipped 1 file)" in lines
        assert set(project.assert_same_files()) == {
            "CACHE/.gitignore",
            "CACHE/CACHEDIR.TAG",
            "CACHE/README.md",
            "CACHE/v/cache/lastfailed",
            "CACHE/v/cache/nodeids",
            "CACHE/v/mine/x",
        }


# Conftests that reach into pytest's provider by its plugin names.  Each
# follows the shape of one found in a public project.

#: Keeps a sandboxed machine's checkout free of .pytest_cache (it is not).
UNREGISTER_CACHEPROVIDER = """
    def pytest_configure(config):
        cache = config.pluginmanager.get_plugin("cacheprovider")
        if cache is not None:
            config.pluginmanager.unregister(cache)
"""

#: Switches off every part of the provider it knows by name.
UNREGISTER_ALL = """
    def pytest_configure(config):
        pm = config.pluginmanager
        for name in ("cacheprovider", "lfplugin", "lfplugin-collwrapper",
                     "nfplugin", "stepwiseplugin"):
            plugin = pm.get_plugin(name)
            if plugin is not None:
                pm.unregister(plugin)
        pm.set_blocked("cacheprovider")
"""

#: Blocks the provider for interactive runs (an --online option).
BLOCK_CACHEPROVIDER = """
    def pytest_configure(config):
        config.pluginmanager.set_blocked("cacheprovider")
"""

#: Keeps --lf's recording but does the selection itself.
OWN_SELECTION = """
    def pytest_configure(config):
        last_failed = config.getoption("lf")
        failed_first = config.getoption("failedfirst")
        config.rerun_mode = "lf" if last_failed else "ff" if failed_first else None
        if config.rerun_mode:
            plugin = config.pluginmanager.get_plugin("lfplugin")
            if plugin is not None:
                plugin.active = False
            wrapper = config.pluginmanager.get_plugin("lfplugin-collwrapper")
            if wrapper is not None:
                config.pluginmanager.unregister(wrapper)

    def pytest_collection_modifyitems(config, items):
        if not config.rerun_mode:
            return
        failed = config.cache.get("cache/lastfailed", {})
        # Its own flow: a failure reruns with the whole file it is in.
        files = {nodeid.split("::")[0] for nodeid in failed}
        chosen = [item for item in items if item.nodeid.split("::")[0] in files]
        rest = [item for item in items if item not in chosen]
        if config.rerun_mode == "lf":
            items[:] = chosen
            config.hook.pytest_deselected(items=rest)
        else:
            items[:] = chosen + rest
"""

#: Fails modules that collect no tests, except those --lf skipped.
EMPTY_MODULES = """
    import pytest

    def _skipped_by_last_failed(collector):
        pm = collector.config.pluginmanager
        if pm.get_plugin("lfplugin-collskip") is None:
            return False
        last_failed = pm.get_plugin("lfplugin")
        paths = getattr(last_failed, "_last_failed_paths", None)
        if paths is None:
            return True
        return (
            collector.path not in paths
            and collector.path not in last_failed.get_last_failed_paths()
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(collector):
        report = yield
        if (
            isinstance(collector, pytest.Module)
            and report.passed
            and not report.result
            and not _skipped_by_last_failed(collector)
        ):
            report.outcome = "failed"
            report.longrepr = f"{collector.path.name} collects no tests"
        return report
"""

#: A group of tests fails together (an "assert any" style plugin).
GROUP_FAILURES = """
    import pytest

    def pytest_configure(config):
        config.addinivalue_line("markers", "group: fails as one")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" and report.failed and item.get_closest_marker("group"):
            lfplugin = item.config.pluginmanager.get_plugin("lfplugin")
            for other in item.session.items:
                if other.get_closest_marker("group"):
                    lfplugin.lastfailed[other.nodeid] = True
"""

#: Skips slow tests unless --lf has failures to rerun.
SLOW_UNLESS_FAILURES = """
    import pytest

    def pytest_configure(config):
        config.addinivalue_line("markers", "slow: slow")

    def pytest_collection_modifyitems(config, items):
        if config.getoption("--lf"):
            lfplugin = config.pluginmanager.get_plugin("lfplugin")
            if len(lfplugin.lastfailed) > 0:
                return
        skip_slow = pytest.mark.skip(reason="need --run-slow option to run")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip_slow)
"""

#: Takes one of the provider's plugins away once the session starts.
UNREGISTER_AT_SESSIONSTART = """
    def pytest_sessionstart(session):
        pm = session.config.pluginmanager
        plugin = pm.get_plugin({name!r})
        if plugin is not None:
            pm.unregister(plugin)
"""

STEPS = (("-v",), ("--lf", "-v"), ("--ff",), ("--nf",), ("--sw",), ("--sw",))


def run_steps(twin: Twin, steps=STEPS) -> list[list[str]]:
    """Each step under both providers: same output, exit code, header, files."""
    outputs = []
    for step in steps:
        result = twin.run("-rA", *step)
        outputs.append(result.assert_same())
        ours = [
            line.replace(Twin.OURS_DIR, Twin.BUILTIN_DIR)
            for line in header_cachedir(result.ours)
        ]
        assert ours == header_cachedir(result.builtin)
        twin.assert_same_files()
    return outputs


class TestPluginNames:
    def test_names_find_ours(self, pytester: pytest.Pytester) -> None:
        pytester.makeconftest(
            """
            def pytest_report_header(config):
                pm = config.pluginmanager
                return [
                    f"hasplugin: {pm.hasplugin('cacheprovider')}",
                    f"lfplugin active: {pm.get_plugin('lfplugin').active}",
                    f"nfplugin active: {pm.get_plugin('nfplugin').active}",
                ]
            """
        )
        pytester.makepyfile("def test_ok(): pass")
        result = pytester.runpytest("--nf")
        result.stdout.fnmatch_lines(
            ["hasplugin: True", "lfplugin active: False", "nfplugin active: True"]
        )

    def test_pytest_lf_skip_recognises_ours(self) -> None:
        from _pytest.cacheprovider import LFPlugin

        from pytest_crosscache.selection.lastfailed import LastFailedPlugin

        assert issubclass(LastFailedPlugin, LFPlugin)
        # ... and inherits none of its hooks.
        for name in dir(LFPlugin):
            if name.startswith("pytest_"):
                assert name in LastFailedPlugin.__dict__

    @pytest.mark.parametrize(
        "conftest",
        [
            UNREGISTER_CACHEPROVIDER,
            UNREGISTER_ALL,
            BLOCK_CACHEPROVIDER,
            OWN_SELECTION,
            SLOW_UNLESS_FAILURES,
        ],
        ids=[
            "unregister-cacheprovider",
            "unregister-all",
            "block-cacheprovider",
            "own-selection",
            "slow-unless-failures",
        ],
    )
    def test_conftest(self, project: Twin, conftest: str) -> None:
        project.pytester.makeconftest(conftest)
        project.pytester.makepyfile(
            test_c="""
            import pytest

            @pytest.mark.slow
            def test_slow():
                pass
            """
        )
        project.pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
        run_steps(project)

    @pytest.mark.parametrize(
        "name",
        [
            "cacheprovider",
            "lfplugin",
            "lfplugin-collwrapper",
            "nfplugin",
            "stepwiseplugin",
        ],
    )
    def test_unregistered_at_session_start(self, project: Twin, name: str) -> None:
        project.pytester.makeconftest(UNREGISTER_AT_SESSIONSTART.format(name=name))
        run_steps(project)

    def test_modules_that_collect_nothing(self, project: Twin) -> None:
        project.pytester.makeconftest(EMPTY_MODULES)
        lines = run_steps(project, [("-v",), ("--lf", "-v")])
        # --lf answered test_b.py without collecting it, and the check knew.
        assert "run-last-failure: rerun previous 1 failure (skipped 1 file)" in lines[1]
        assert not any("collects no tests" in line for line in lines[1])
        project.pytester.makepyfile(test_empty="# no tests yet\n")
        lines = run_steps(project, [("-v",)])
        assert any("test_empty.py collects no tests" in line for line in lines[0])

    def test_failures_added_by_another_plugin(self, project: Twin) -> None:
        project.pytester.makeconftest(GROUP_FAILURES)
        project.pytester.makepyfile(
            test_group="""
            import pytest

            @pytest.mark.group
            def test_first():
                pass

            @pytest.mark.group
            def test_second():
                assert 0
            """
        )
        lines = run_steps(project, [("-v",), ("--lf", "-v")])
        assert (
            "run-last-failure: rerun previous 3 failures (skipped 1 file)" in lines[1]
        )
        files = project.assert_same_files()
        assert set(files["CACHE/v/cache/lastfailed"]) == {  # type: ignore[arg-type]
            "test_a.py::test_fail",
            "test_group.py::test_first",
            "test_group.py::test_second",
        }

    def test_pytest_lf_skip(self, project: Twin) -> None:
        """pytest-lf-skip's --lf-skip: skips instead of deselecting, as with pytest.

        With pytest 9.2, pytest-lf-skip 1.2 fails every session with an
        INTERNALERROR of its own (it reads ``config._opt2dest``, which
        pytest 9.2 removed); it does so with either provider.
        """
        enable = ("-p", "pytest_lf_skip")
        for step in [(), ("--lf", "--lf-skip"), ("--lf",)]:
            result = project.run(*enable, "-rA", *step)
            if result.builtin.ret == pytest.ExitCode.INTERNAL_ERROR:
                assert result.ours.ret == pytest.ExitCode.INTERNAL_ERROR
                last = [
                    (r.outlines + r.errlines)[-1] for r in (result.ours, result.builtin)
                ]
                assert last[0] == last[1]
                assert "_opt2dest" in last[0]
            else:
                lines = result.assert_same()
                if "--lf-skip" in step:
                    assert any(
                        "SKIPPED [2] test_b.py: previously passed" in line
                        for line in lines
                    )
            project.assert_same_files()


# Conftests that move the cache elsewhere.  Each derives the new place from
# the configured one, so that the two providers' caches stay apart.

#: Assigns pytest's private attribute in a plain pytest_configure (the most
#: common shape: sandboxes, read-only checkouts).
ASSIGN_CACHEDIR = """
    from pathlib import Path

    def pytest_configure(config):
        moved = Path(str(config.cache._cachedir) + "-moved")
        moved.mkdir(parents=True, exist_ok=True)
        config.cache._cachedir = moved
"""

#: Changes the ini value before the provider reads it.
INI_TRYFIRST = """
    import pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(config):
        config._inicache["cache_dir"] = config.getini("cache_dir") + "-moved"
"""

#: Changes the ini value too late: the provider has read it already.
INI_TOO_LATE = """
    def pytest_configure(config):
        config._inicache["cache_dir"] = config.getini("cache_dir") + "-moved"
"""

#: Puts a new pytest Cache for another directory on config.
REPLACE_WITH_PYTESTS = """
    from _pytest.cacheprovider import Cache

    def pytest_configure(config):
        config._inicache["cache_dir"] = config.getini("cache_dir") + "-moved"
        config.cache = Cache.for_config(config, _ispytest=True)
"""

#: Puts a pytest-crosscache Cache for another directory on config.
REPLACE_WITH_OURS = """
    from pathlib import Path

    from pytest_crosscache import Cache

    def pytest_configure(config):
        config.cache = Cache(Path(str(config.cache._cachedir) + "-moved"))
"""


class TestRelocation:
    """The session's records and the fixture's values go where pytest would send them."""

    @pytest.mark.parametrize(
        "conftest",
        [
            ASSIGN_CACHEDIR,
            INI_TRYFIRST,
            INI_TOO_LATE,
            REPLACE_WITH_PYTESTS,
            REPLACE_WITH_OURS,
        ],
        ids=[
            "assign-cachedir",
            "ini-tryfirst",
            "ini-too-late",
            "replace-with-pytests",
            "replace-with-ours",
        ],
    )
    def test_conftest(self, project: Twin, conftest: str) -> None:
        project.pytester.makeconftest(conftest)
        outputs = run_steps(project)
        moved = conftest is not INI_TOO_LATE
        # pytest reads the failures where the cache is when its provider
        # starts, before these conftests move it: when they move it in
        # plain pytest_configure, --lf never sees the failures.
        late = conftest not in (INI_TOO_LATE, INI_TRYFIRST)
        rerun = "run-last-failure: rerun previous 1 failure (skipped 1 file)"
        assert (rerun not in outputs[1]) is late
        files = project.assert_same_files()
        stored = {key for key in files if key.startswith("CACHE")}
        expected = {
            "v/cache/lastfailed",
            "v/cache/nodeids",
            "v/cache/stepwise",
            "v/mine/x",
        }
        prefix = "CACHE-moved/" if moved else "CACHE/"
        assert expected <= {
            key.removeprefix(prefix) for key in stored if key.startswith(prefix)
        }
        if moved:
            assert not any(key.startswith("CACHE/v/") for key in stored)
        # The test history goes with the session's records when the cache
        # is still one of ours; another kind of cache cannot keep it.
        root = project.pytester.path
        place = root / (".cache-ours-moved" if moved else ".cache-ours")
        histories = {
            path.parents[3].name for path in root.glob(".*/v/crosscache/history/runs")
        }
        if conftest is REPLACE_WITH_PYTESTS:
            assert histories == set()
        else:
            assert histories == {place.name}

    def test_assigned_in_a_test(self, twin: Twin) -> None:
        """A value set after the move is found there, the old place keeps the rest."""
        twin.pytester.makepyfile(
            """
            from pathlib import Path

            def test_move(request):
                cache = request.config.cache
                cache.set("mine/before", 1)
                old = Path(cache._cachedir)
                cache._cachedir = Path(str(old) + "-moved")
                assert Path(cache._cachedir) == Path(str(old) + "-moved")
                cache.set("mine/after", 2)
                assert cache.get("mine/before", None) is None
                assert cache.get("mine/after", None) == 2
                assert cache.mkdir("data").parent.parent == Path(cache._cachedir)
            """
        )
        twin.check("-rA")
        files = twin.assert_same_files()
        assert "CACHE/v/mine/before" in files
        assert "CACHE-moved/v/mine/after" in files
        assert "CACHE-moved/v/cache/nodeids" in files
