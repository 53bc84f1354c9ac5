"""Taking over from pytest's builtin provider: options, ini, header, directory, state."""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

import pytest

from conftest import header_cachedir

SUPPORTING = {"README.md", ".gitignore", "CACHEDIR.TAG"}
# Fixed by the Cache Directory Tagging Specification.
TAG_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"

EARLIEST_CONFIGURE = """
    import pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(config):
        cls = type(config.cache)
        config._cache_type = cls.__module__ + "." + cls.__qualname__

    def pytest_report_header(config):
        return "cache type: " + config._cache_type
"""


class TestTakeover:
    def test_ours_from_the_earliest_configure_hook(
        self, pytester: pytest.Pytester
    ) -> None:
        pytester.makeconftest(EARLIEST_CONFIGURE)
        pytester.makepyfile(
            "def test_type(request):\n"
            "    import pytest_crosscache\n"
            "    assert type(request.config.cache) is pytest_crosscache.Cache\n"
        )
        result = pytester.runpytest()
        result.stdout.fnmatch_lines(["cache type: pytest_crosscache.cache.Cache"])
        result.assert_outcomes(passed=1)

    def test_builtin_with_no_crosscache(self, pytester: pytest.Pytester) -> None:
        # pytest's own provider sets config.cache in a tryfirst pytest_configure
        # of its own, so a conftest can only look later.
        pytester.makeconftest(
            """
            def pytest_report_header(config):
                cls = type(config.cache)
                return "cache type: " + cls.__module__ + "." + cls.__qualname__
            """
        )
        pytester.makepyfile("def test_ok(): pass")
        result = pytester.runpytest("-p", "no:crosscache")
        result.stdout.fnmatch_lines(["cache type: _pytest.cacheprovider.Cache"])
        result.assert_outcomes(passed=1)

    def test_pytests_names_find_ours(self, pytester: pytest.Pytester) -> None:
        pytester.makeconftest(
            """
            def pytest_report_header(config):
                pm = config.pluginmanager
                names = (
                    "cacheprovider", "stepwise", "lfplugin", "lfplugin-collwrapper",
                    "nfplugin", "stepwiseplugin",
                )
                found = [
                    type(p).__module__ if not hasattr(p, "__file__") else p.__name__
                    for p in map(pm.get_plugin, names)
                ]
                return "found: " + " ".join(found)
            """
        )
        pytester.makepyfile("def test_ok(): pass")
        result = pytester.runpytest("--sw", "--lf")
        result.stdout.fnmatch_lines(
            [
                "found: pytest_crosscache.provider pytest_crosscache.provider"
                " pytest_crosscache.selection.lastfailed"
                " pytest_crosscache.selection.lastfailed"
                " pytest_crosscache.selection.newfirst"
                " pytest_crosscache.selection.stepwise"
            ]
        )

    def test_no_stepwise_removes_only_sw(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_fails(): assert 0")
        for extra in ((), ("-p", "no:crosscache")):
            result = pytester.runpytest(*extra, "-p", "no:stepwise", "--sw")
            assert result.ret == pytest.ExitCode.USAGE_ERROR
            result.stderr.fnmatch_lines(["*unrecognized arguments: --sw*"])
            pytester.runpytest(*extra, "-p", "no:stepwise").assert_outcomes(failed=1)
            result = pytester.runpytest(*extra, "-p", "no:stepwise", "--lf")
            result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*"])

    def test_help_lists_options_and_ini(self, pytester: pytest.Pytester) -> None:
        result = pytester.runpytest("--help")
        assert result.ret == 0
        result.stdout.fnmatch_lines_random(
            [
                "*--lf, --last-failed*",
                "*--ff, --failed-first*",
                "*--nf, --new-first*",
                "*--cache-show*",
                "*--cache-clear*",
                "*--lfnf*--last-failed-no-failures*",
                "*--sw, --stepwise*",
                "*--sw-skip, --stepwise-skip*",
                "*--sw-reset, --stepwise-reset*",
                "*cache_dir (string)*",
                "*cache_lock_timeout*",
            ]
        )
        # Each option once: the builtin's are not listed next to ours.
        assert sum("--cache-show" in line for line in result.outlines) == 1
        assert sum("--sw-skip" in line for line in result.outlines) == 1

    @pytest.mark.parametrize("option", ["--fixtures", "--fixtures-per-test"])
    def test_fixture_listings_show_one_cache_fixture(
        self, pytester: pytest.Pytester, option: str
    ) -> None:
        pytester.makepyfile(
            "def test_uses(cache):\n    assert cache.get('k', 1) == 1\n"
        )
        for plugins, origin in (
            ([], "*pytest_crosscache*provider.py:*"),
            (
                ["-p", "no:crosscache"],
                "*_pytest*cacheprovider.py:*",
            ),
        ):
            result = pytester.runpytest(option, *plugins)
            assert result.ret == 0
            entries = [line for line in result.outlines if line.startswith("cache -- ")]
            assert len(entries) == 1, result.outlines
            assert fnmatch.fnmatch(entries[0], origin), entries
        pytester.runpytest().assert_outcomes(passed=1)


class TestReportHeader:
    @pytest.mark.parametrize(
        ("args", "ini"),
        [
            pytest.param((), None, id="default"),
            pytest.param(("-v",), None, id="verbose"),
            pytest.param(("-q",), None, id="quiet"),
            pytest.param((), "custom/cache", id="relative"),
            pytest.param((), ".pytest_cache", id="explicit-default"),
            pytest.param(("-v",), "custom", id="verbose-relative"),
            pytest.param((), "ABSOLUTE", id="absolute"),
        ],
    )
    def test_same_as_builtin(
        self,
        pytester: pytest.Pytester,
        tmp_path: Path,
        args: tuple[str, ...],
        ini: str | None,
    ) -> None:
        if ini == "ABSOLUTE":
            ini = str(tmp_path / "elsewhere")
        if ini is not None:
            pytester.makeini(f"[pytest]\ncache_dir = {ini}\n")
        pytester.makepyfile("def test_ok(): pass")
        ours = header_cachedir(pytester.runpytest(*args))
        builtin = header_cachedir(pytester.runpytest("-p", "no:crosscache", *args))
        assert ours == builtin
        shows = bool(args == ("-v",) or (ini is not None and ini != ".pytest_cache"))
        assert bool(ours) == shows
        if ini == str(tmp_path / "elsewhere"):
            assert ours == [f"cachedir: {tmp_path / 'elsewhere'}"]


class TestCacheDirIni:
    def run_and_find(self, pytester: pytest.Pytester, *args: str) -> None:
        pytester.makepyfile("def test_fails(): assert 0")
        pytester.runpytest(*args).assert_outcomes(failed=1)

    def assert_cache_at(self, path: Path) -> None:
        lastfailed = json.loads((path / "v" / "cache" / "lastfailed").read_text())
        assert list(lastfailed.values()) == [True]

    def test_relative_to_rootdir(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytester.makeini("[pytest]\ncache_dir = build/cache\n")
        sub = pytester.mkpydir("sub")
        sub.joinpath("test_sub.py").write_text("def test_fails(): assert 0\n")
        monkeypatch.chdir(sub)
        pytester.runpytest().assert_outcomes(failed=1)
        self.assert_cache_at(pytester.path / "build" / "cache")
        assert not (sub / "build").exists()

    def test_user_home(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        home = tmp_path / "home"
        home.mkdir()
        monkeypatch.setenv("HOME", str(home))
        pytester.makeini("[pytest]\ncache_dir = ~/mycache\n")
        self.run_and_find(pytester)
        self.assert_cache_at(home / "mycache")

    def test_environment_variable(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("CROSSCACHE_TEST_ROOT", str(tmp_path / "var"))
        pytester.makeini("[pytest]\ncache_dir = $CROSSCACHE_TEST_ROOT/c\n")
        self.run_and_find(pytester)
        self.assert_cache_at(tmp_path / "var" / "c")

    def test_absolute(self, pytester: pytest.Pytester, tmp_path: Path) -> None:
        target = tmp_path / "abs" / "cache"
        pytester.makeini(f"[pytest]\ncache_dir = {target}\n")
        self.run_and_find(pytester)
        self.assert_cache_at(target)
        assert not (pytester.path / ".pytest_cache").exists()

    def test_tox_env_dir_default(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("TOX_ENV_DIR", str(tmp_path / "tox" / "py"))
        self.run_and_find(pytester, "-p", "no:randomly")
        self.assert_cache_at(tmp_path / "tox" / "py" / ".pytest_cache")
        assert not (pytester.path / ".pytest_cache").exists()
        # The ini setting still wins over the tox default.
        pytester.makeini("[pytest]\ncache_dir = local\n")
        self.run_and_find(pytester)
        self.assert_cache_at(pytester.path / "local")

    def test_tox_env_dir_same_header_as_builtin(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("TOX_ENV_DIR", str(tmp_path / "tox"))
        pytester.makepyfile("def test_ok(): pass")
        ours = header_cachedir(pytester.runpytest())
        builtin = header_cachedir(pytester.runpytest("-p", "no:crosscache"))
        assert ours == builtin == [f"cachedir: {tmp_path / 'tox' / '.pytest_cache'}"]


class TestCacheDirCreation:
    def test_not_created_by_collect_only(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_fails(): assert 0")
        pytester.runpytest("--collect-only")
        assert not (pytester.path / ".pytest_cache").exists()

    def test_created_with_supporting_files(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_fails(): assert 0")
        pytester.runpytest().assert_outcomes(failed=1)
        cachedir = pytester.path / ".pytest_cache"
        assert {p.name for p in cachedir.iterdir()} >= SUPPORTING
        assert "*" in (cachedir / ".gitignore").read_text().splitlines()
        assert (cachedir / "CACHEDIR.TAG").read_bytes().startswith(TAG_SIGNATURE)
        assert (cachedir / "README.md").read_text().strip()

    def test_same_permissions_as_builtin(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_fails(): assert 0")
        pytester.runpytest("-o", "cache_dir=ours")
        pytester.runpytest("-p", "no:crosscache", "-o", "cache_dir=builtin")
        mode = {
            name: os.stat(pytester.path / name).st_mode for name in ("ours", "builtin")
        }
        assert mode["ours"] == mode["builtin"]

    @pytest.mark.parametrize(
        "provider", [(), ("-p", "no:crosscache")], ids=["ours", "builtin"]
    )
    def test_existing_directory_left_as_is(
        self, pytester: pytest.Pytester, provider: tuple[str, ...]
    ) -> None:
        cachedir = pytester.mkdir(".pytest_cache")
        pytester.makepyfile("def test_fails(): assert 0")
        pytester.runpytest(*provider).assert_outcomes(failed=1)
        names = {p.name for p in cachedir.iterdir()}
        assert not names & SUPPORTING
        assert "v" in names

    def test_cache_mkdir_creates_it_complete(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            def test_mkdir(cache):
                assert cache.mkdir("myplugin").is_dir()
            """
        )
        pytester.runpytest("--collect-only")
        assert not (pytester.path / ".pytest_cache").exists()
        pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)
        cachedir = pytester.path / ".pytest_cache"
        assert {p.name for p in cachedir.iterdir()} >= SUPPORTING
        assert (cachedir / "d" / "myplugin").is_dir()


class TestStateRoundTrip:
    """State written by one provider is read by the other, in both directions."""

    PROJECT = """
        import os

        def test_one():
            pass

        def test_two():
            assert os.path.exists("fixed")

        def test_three():
            pass
    """

    def test_lf_nf_sw_survive(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(test_main=self.PROJECT)
        os.utime(pytester.path / "test_main.py", (1_000, 1_000))
        builtin = ("-p", "no:crosscache")

        # Ours records a failure, the ids and a stepwise position.
        pytester.runpytest("--sw").assert_outcomes(passed=1, failed=1)

        # pytest's own provider reads all three.
        pytester.makepyfile(test_new="def test_new(): pass")
        os.utime(pytester.path / "test_new.py", (500, 500))
        result = pytester.runpytest(*builtin, "-v", "--lf", "--nf")
        result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*"])
        result.assert_outcomes(failed=1)
        result = pytester.runpytest(
            *builtin, "-v", "--nf", "--deselect", "test_main.py::test_two"
        )
        result.stdout.fnmatch_lines(
            [
                "test_new.py::test_new PASSED*",
                "test_main.py::test_one PASSED*",
                "test_main.py::test_three PASSED*",
            ]
        )
        (pytester.path / "test_new.py").unlink()
        result = pytester.runpytest(*builtin, "-v", "--sw")
        result.stdout.fnmatch_lines(["stepwise: skipping 1 already passed items*"])

        # And ours reads what pytest's own wrote.
        pytester.makepyfile(test_newer="def test_newer(): pass")
        os.utime(pytester.path / "test_newer.py", (200, 200))
        result = pytester.runpytest(
            "-v", "--nf", "--deselect", "test_main.py::test_two"
        )
        result.stdout.fnmatch_lines(
            ["test_newer.py::test_newer PASSED*", "test_main.py::test_one PASSED*"]
        )
        (pytester.path / "test_newer.py").unlink()
        result = pytester.runpytest("-v", "--sw")
        result.stdout.fnmatch_lines(["stepwise: skipping 1 already passed items*"])
        result = pytester.runpytest("-v", "--lf")
        result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*"])
        result.assert_outcomes(failed=1)

        pytester.path.joinpath("fixed").touch()
        pytester.runpytest(*builtin, "--sw").assert_outcomes(passed=2, deselected=1)
        # Its run cleared the failure in the shared record.
        result = pytester.runpytest("-v", "--lf")
        result.stdout.fnmatch_lines(
            ["run-last-failure: no previously failed tests, not deselecting items."]
        )
        result.assert_outcomes(passed=3)

    def test_cache_fixture_across_runs(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            import pytest

            def test_set_then_get(cache, request):
                previous = cache.get("myplugin/runs", None)
                cache.set("myplugin/runs", (previous or []) + [len(previous or [])])
                cache.set("myplugin/blob", {"k": ["v", 1, 2.5, None, True]})
                print("previous:", previous)
                assert cache is request.config.cache
            """
        )
        for args, previous in [
            ((), "None"),
            ((), "[0]"),
            # pytest's own provider reads and extends the same values.
            (("-p", "no:crosscache"), "[0, 1]"),
            ((), "[0, 1, 2]"),
        ]:
            result = pytester.runpytest("-s", *args)
            result.assert_outcomes(passed=1)
            assert f"previous: {previous}" in result.stdout.str()
        blob = json.loads(
            (pytester.path / ".pytest_cache" / "v" / "myplugin" / "blob").read_text()
        )
        assert blob == {"k": ["v", 1, 2.5, None, True]}
