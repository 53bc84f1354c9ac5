"""pytest-crosscache under real pytest-xdist sessions (``-n 2``).

The inner runs are subprocesses with two real workers each.  What a run
did is read from a small recording plugin in the inner project's conftest
(tests that ran, which worker ran them, each worker's collection order),
not from the terminal layout, which xdist interleaves.  Where the builtin
provider behaves the same, it runs too (``-p no:crosscache``) as a
baseline.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import attrs
import pytest

PROVIDERS = {"crosscache": (), "builtin": ("-p", "no:crosscache")}
WATCHED = ("cache/lastfailed", "cache/nodeids", "cache/stepwise")
PROBE = "probe/worker"
SENTINEL = "probe/controller"

# Records, on the controller, what the session did and prints it as one
# JSON line at the end.  The xdist hook is optional so the same conftest
# also serves runs without workers.
RECORDER = """
import json
import pytest

class Recorder:
    def __init__(self):
        self.ran = {}
        self.collected = {}

    def pytest_runtest_logreport(self, report):
        node = getattr(report, "node", None)
        worker = node.gateway.id if node is not None else "main"
        entry = self.ran.setdefault(report.nodeid, {"worker": worker, "failed": False})
        entry["failed"] = entry["failed"] or report.failed

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        self.collected[node.gateway.id] = list(ids)

    def pytest_terminal_summary(self, terminalreporter):
        record = {"ran": self.ran, "collected": self.collected}
        terminalreporter.write_line("RECORD " + json.dumps(record))

def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Recorder(), "recorder")
"""

# Makes worker writes to the watched keys observable.  The controller
# snapshots the watched files at the end of its pytest_configure: after it
# cleared the cache for --cache-clear, before any worker starts.  Into the
# snapshot goes a sentinel it stores just before, so that a worker clearing
# the cache would show too.  A worker that is done with everything,
# pytest_unconfigure included, leaves a marker; the controller waits for
# all markers at the very start of its own sessionfinish, before any
# provider stores its records there, and snapshots again.  Any difference
# can only come from a worker.  As a control, every worker writes PROBE
# through ``config.cache``, which must show up.
WATCHER = """
import json
import os
import time

import pytest

KEYS = {keys!r}
PROBE = {probe!r}
SENTINEL = {sentinel!r}

def snapshot(config, name):
    shot = {{}}
    for key in KEYS:
        path = config.rootpath / config.getini("cache_dir") / "v" / key
        try:
            stat = path.stat()
        except FileNotFoundError:
            shot[key] = None
        else:
            shot[key] = [stat.st_ino, stat.st_mtime_ns, path.read_text("utf-8")]
    config.rootpath.joinpath(name).write_text(json.dumps(shot))

def markers(config):
    return config.rootpath / "worker-markers"

def pytest_configure(config):
    if hasattr(config, "workerinput"):
        config.cache.set(PROBE, config.workerinput["workerid"])
    elif config.getoption("numprocesses"):
        config.cache.set(SENTINEL, "from the controller")
        snapshot(config, "before-workers.json")

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        markers(config).mkdir(exist_ok=True)
        markers(config).joinpath(config.workerinput["workerid"]).touch()

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    config = session.config
    expected = config.getoption("numprocesses")
    if hasattr(config, "workerinput") or not expected:
        return
    deadline = time.monotonic() + 60
    while not markers(config).is_dir() or len(os.listdir(markers(config))) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not finish")
        time.sleep(0.01)
    snapshot(config, "after-workers.json")
"""

# Whether a test fails is fixed, so every run of a scenario sees the same
# outcomes.  Failures sit in two files, so that with ``--dist loadfile``
# each worker gets failures of its own.
PROJECT = {
    "test_alpha": """
        def test_one():
            pass

        def test_two():
            assert False

        def test_three():
            pass
    """,
    "test_beta": """
        import pytest

        def test_one():
            assert False

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_param(n):
            assert n != 2

        def test_skipped():
            pytest.skip("never")
    """,
    "test_gamma": """
        def test_one():
            pass

        def test_two():
            pass
    """,
}
FAILURES = {
    "test_alpha.py::test_two",
    "test_beta.py::test_one",
    "test_beta.py::test_param[2]",
}
ALL_IDS = {
    "test_alpha.py::test_one",
    "test_alpha.py::test_two",
    "test_alpha.py::test_three",
    "test_beta.py::test_one",
    "test_beta.py::test_param[1]",
    "test_beta.py::test_param[2]",
    "test_beta.py::test_param[3]",
    "test_beta.py::test_skipped",
    "test_gamma.py::test_one",
    "test_gamma.py::test_two",
}


@attrs.frozen
class Record:
    """What one inner session did, as seen by its controller."""

    #: node id -> {"worker": "gw0" | "main", "failed": bool}
    ran: dict[str, dict[str, Any]]
    #: worker id -> node ids in that worker's collection order
    collected: dict[str, list[str]]

    @classmethod
    def of(cls, result: pytest.RunResult) -> Record:
        lines = [line for line in result.outlines if line.startswith("RECORD ")]
        assert len(lines) == 1, "\n".join(result.outlines)
        data = json.loads(lines[0][len("RECORD ") :])
        return cls(data["ran"], data["collected"])

    @property
    def ids(self) -> set[str]:
        return set(self.ran)

    @property
    def failed(self) -> set[str]:
        return {nodeid for nodeid, entry in self.ran.items() if entry["failed"]}


@pytest.fixture(autouse=True)
def _no_stale_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    # Scenarios rewrite test files between runs; a .pyc keyed on mtime and
    # size could bring back the previous version.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Command line arguments selecting one cache provider."""
    return PROVIDERS[request.param]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(**PROJECT)
    pytester.makeconftest(RECORDER)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Record]:
    """One inner session; with workers in a subprocess of its own, else in-process."""
    if "-n" in args:
        result = pytester.runpytest_subprocess(*args)
    else:
        result = pytester.runpytest(*args)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    return result, Record.of(result)


def stored(pytester: pytest.Pytester, key: str) -> Any:
    path = pytester.path / ".pytest_cache" / "v" / key
    return json.loads(path.read_text("utf-8")) if path.exists() else None


@pytest.mark.parametrize("option", ["--lf", "--ff"])
def test_selection_matches_a_run_without_workers(
    project: pytest.Pytester, provider: tuple[str, ...], option: str
) -> None:
    _, first = run(project, *provider)
    assert first.failed == FAILURES

    _, alone = run(project, *provider, option)
    _, distributed = run(project, *provider, option, "-n", "2")

    expected = FAILURES if option == "--lf" else ALL_IDS
    assert alone.ids == expected
    assert set(list(alone.ran)[: len(FAILURES)]) == FAILURES
    assert distributed.ids == expected
    assert distributed.failed == FAILURES
    assert {distributed.ran[nodeid]["worker"] for nodeid in expected} <= {"gw0", "gw1"}
    # Each worker collected the same items, in the same (reordered) order.
    assert set(distributed.collected) == {"gw0", "gw1"}
    for ids in distributed.collected.values():
        assert set(ids) == expected
        assert set(ids[: len(FAILURES)]) == FAILURES, ids


def test_lastfailed_holds_the_failures_of_every_worker(
    project: pytest.Pytester, provider: tuple[str, ...]
) -> None:
    _, record = run(project, *provider, "-n", "2", "--dist", "loadfile")
    # The scenario is only meaningful if both workers had failures to report.
    workers = {record.ran[nodeid]["worker"] for nodeid in FAILURES}
    assert workers == {"gw0", "gw1"}
    assert record.failed == FAILURES
    assert set(stored(project, "cache/lastfailed")) == FAILURES


def test_lastfailed_merges_worker_results_into_the_stored_record(
    project: pytest.Pytester, provider: tuple[str, ...]
) -> None:
    run(project, *provider)
    # test_beta's failures are fixed; test_alpha's stays and a new one appears.
    project.makepyfile(
        test_beta="""
            def test_one():
                pass

            def test_param():
                pass
        """,
        test_gamma="""
            def test_one():
                pass

            def test_two():
                assert False
        """,
    )
    run(project, *provider, "-n", "2")
    assert set(stored(project, "cache/lastfailed")) == {
        "test_alpha.py::test_two",
        "test_gamma.py::test_two",
        # Not collected any more, so neither passed nor failed: kept, as the
        # builtin keeps it.
        "test_beta.py::test_param[2]",
    }


@pytest.mark.parametrize(
    "load", [(), ("-p", "xdist.plugin")], ids=["entry-point", "p-xdist-plugin"]
)
def test_nodeids_learns_every_collected_id_from_the_workers(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, load: tuple[str, ...]
) -> None:
    """Our improvement: the builtin controller never collects, so it stores nothing.

    Also when xdist is loaded by module name, with plugin autoloading off.
    """
    if load:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        load = (*load, "-p", "pytest_crosscache.plugin")
    run(project, *load, "-n", "2")
    assert set(stored(project, "cache/nodeids")) == ALL_IDS


def test_new_first_under_xdist_knows_tests_seen_by_earlier_workers(
    project: pytest.Pytester,
) -> None:
    run(project, "-n", "2")
    project.makepyfile(
        test_delta="""
            def test_new():
                pass
        """
    )
    _, record = run(project, "--nf", "-n", "2")
    for ids in record.collected.values():
        assert ids[0] == "test_delta.py::test_new", ids
    assert set(stored(project, "cache/nodeids")) == ALL_IDS | {
        "test_delta.py::test_new"
    }


# pytest's own workers clear the cache again for --cache-clear (pytest
# 9.2), wiping what the controller stored after its own clear; ours do not.
BUILTIN_WORKERS_CLEAR = {PROBE, SENTINEL}


@pytest.mark.parametrize(
    ("provider", "args", "changed_by_workers"),
    [
        pytest.param(PROVIDERS["builtin"], (), {PROBE}, id="builtin"),
        pytest.param((), ("--lf",), {PROBE}, id="lf"),
        pytest.param((), ("--ff",), {PROBE}, id="ff"),
        pytest.param((), ("--nf",), {PROBE}, id="nf"),
        pytest.param((), ("--sw",), {PROBE}, id="sw"),
        pytest.param((), ("--cache-clear",), {PROBE}, id="cache-clear"),
        pytest.param(
            PROVIDERS["builtin"],
            ("--cache-clear",),
            BUILTIN_WORKERS_CLEAR,
            id="builtin-cache-clear",
        ),
    ],
)
def test_workers_never_write_the_shared_records(
    project: pytest.Pytester,
    provider: tuple[str, ...],
    args: tuple[str, ...],
    changed_by_workers: set[str],
) -> None:
    """Nor do the builtin's, which shows the check is fair, save for --cache-clear."""
    project.makepyfile(
        watcher=WATCHER.format(
            keys=(*WATCHED, PROBE, SENTINEL), probe=PROBE, sentinel=SENTINEL
        )
    )
    project.makeconftest(RECORDER + 'pytest_plugins = ["watcher"]\n')
    # Fill all three records without workers, so a worker has something to
    # overwrite: the outcomes change before the run with workers.
    run(project, *provider, "--sw")
    run(project, *provider)
    project.makepyfile(
        test_alpha="""
            def test_one():
                assert False

            def test_two():
                pass
        """
    )

    _, record = run(project, *provider, "-n", "2", *args)
    before, after = (
        json.loads(project.path.joinpath(name).read_text("utf-8"))
        for name in ("before-workers.json", "after-workers.json")
    )
    if "--cache-clear" not in args:
        assert all(before[key] is not None for key in WATCHED), before
    assert before[SENTINEL] is not None
    changed = {key for key in before if before[key] != after[key]}
    assert changed == changed_by_workers

    # The controller, for its part, stored every failure the workers saw.
    assert record.failed
    assert record.failed <= set(stored(project, "cache/lastfailed"))


def test_stepwise_with_workers_does_not_crash(
    project: pytest.Pytester, provider: tuple[str, ...]
) -> None:
    for _ in range(2):
        result, record = run(project, *provider, "--sw", "-n", "2")
        # Like the builtin: the first failure a worker reports stops the session.
        assert result.ret == pytest.ExitCode.INTERRUPTED
        result.stdout.fnmatch_lines(
            ["*Interrupted: Test failed, continuing from this test next run.*"]
        )
        assert "Traceback" not in result.stdout.str()
        assert record.failed
    state = stored(project, "cache/stepwise")
    assert state is None or set(state) == {
        "last_failed",
        "last_test_count",
        "last_cache_date_str",
    }
