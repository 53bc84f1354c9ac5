"""Recording the test history in real pytest sessions (pytester, xdist, rerunfailures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUIET_INNER_PLUGINS
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.history import store
from pytest_crosscache.history.model import History
from pytest_crosscache.history.revision import CI_VARIABLE
from pytest_crosscache.history.revision import COMMIT_VARIABLES
from pytest_crosscache.history.store import load_history_from_backend

KINDS = """
import pytest

def test_pass(): pass
def test_fail(): assert 0

@pytest.fixture
def broken_setup(): raise RuntimeError("setup")
def test_setup_error(broken_setup): pass

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown")
def test_teardown_error(broken_teardown): pass

@pytest.mark.skip
def test_skip(): pass

@pytest.mark.xfail
def test_xfail(): assert 0

@pytest.mark.xfail
def test_xpass(): pass
"""

# Fails on its first attempt in a session (a marker file per session), then
# passes: what pytest-rerunfailures turns into a rerun.
FLAKY_ONCE = """
import os
from pathlib import Path

def test_flaky():
    marker = Path(os.environ["FLAKY_MARKER"])
    if not marker.exists():
        marker.touch()
        assert 0, "first attempt"
"""


@pytest.fixture(autouse=True)
def _no_ci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs decide for themselves whether they are CI runs."""
    monkeypatch.delenv(CI_VARIABLE, raising=False)
    for _, variable in COMMIT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def history_of(root: Path, cache: str = ".pytest_cache") -> History:
    return load_history_from_backend(DirectoryBackend(root / cache))


def history_keys(root: Path) -> list[str]:
    return list(DirectoryBackend(root / ".pytest_cache").keys("crosscache/history/*"))


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name != CI_VARIABLE
        and name not in {variable for _, variable in COMMIT_VARIABLES}
        and not name.startswith("PYTEST_XDIST")
    }
    env["PYTEST_ADDOPTS"] = " ".join(QUIET_INNER_PLUGINS)
    env.update(extra)
    return env


def run_subprocess(root: Path, *args: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=root,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "PytestCacheWarning" not in proc.stdout + proc.stderr
    return proc.stdout


def test_every_outcome_is_recorded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_kinds=KINDS)
    pytester.runpytest().assert_outcomes(
        passed=2, failed=1, errors=2, skipped=1, xfailed=1, xpassed=1
    )
    tests = history_of(pytester.path).tests
    assert {nodeid.split("::")[1]: t.outcomes for nodeid, t in tests.items()} == {
        "test_pass": "P",
        "test_fail": "F",
        "test_setup_error": "E",
        "test_teardown_error": "E",
        "test_skip": "S",
        "test_xfail": "x",
        "test_xpass": "X",
    }
    runs = history_of(pytester.path).runs
    (run,) = runs.values()
    assert (run.tests, run.failed, run.ci) == (7, 3, False)


def test_one_run_per_session_and_a_bounded_window(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\ndef test_two(): pass\n")
    for _ in range(5):
        pytester.runpytest("-o", "cache_history_runs=3").assert_outcomes(passed=2)
    history = history_of(pytester.path)
    assert history.tests["test_a.py::test_one"].outcomes == "PPP"
    assert len(set(history.tests["test_a.py::test_one"].run_ids)) == 3
    assert len(history.runs) == 5


def test_switched_off_records_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n")
    pytester.runpytest("-o", "cache_history=false").assert_outcomes(passed=1)
    assert history_keys(pytester.path) == []
    pytester.makeini("[pytest]\ncache_history = false\n")
    pytester.runpytest().assert_outcomes(passed=1)
    assert history_keys(pytester.path) == []


def test_no_cacheprovider_records_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert history_keys(pytester.path) == []


def test_the_builtin_provider_leaves_the_history_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
    before = history_of(pytester.path)
    pytester.runpytest("-p", "no:crosscache").assert_outcomes(passed=1)
    assert history_of(pytester.path) == before
    result = pytester.runpytest(
        "-p", "no:crosscache", "--cache-show", "crosscache/history/runs"
    )
    result.stdout.fnmatch_lines(["crosscache/history/runs contains:"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("cache_history_runs=0", "cache_history_runs must be a whole number*'0'"),
        ("cache_history_runs=many", "cache_history_runs must be a whole number*"),
        ("cache_history=perhaps", "cache_history: *use true or false"),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, setting: str, message: str
) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n")
    result = pytester.runpytest("-o", setting)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_lf_run_touches_only_the_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="def test_ok(): pass\ndef test_bad(): assert 0\n",
        test_b="def test_other(): pass\n",
    )
    pytester.runpytest().assert_outcomes(passed=2, failed=1)
    pytester.runpytest("--lf").assert_outcomes(failed=1)
    tests = history_of(pytester.path).tests
    assert tests["test_a.py::test_bad"].outcomes == "FF"
    assert tests["test_a.py::test_ok"].outcomes == "P"
    assert tests["test_b.py::test_other"].outcomes == "P"


def test_removed_tests_are_forgotten_after_a_whole_suite_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n", test_b="def test_two(): pass")
    pytester.runpytest().assert_outcomes(passed=2)
    pytester.path.joinpath("test_b.py").unlink()
    # A partial collection forgets nothing.
    pytester.runpytest("test_a.py").assert_outcomes(passed=1)
    assert "test_b.py::test_two" in history_of(pytester.path).tests
    pytester.runpytest().assert_outcomes(passed=1)
    assert set(history_of(pytester.path).tests) == {"test_a.py::test_one"}
    durations = store.recorded_durations_from_backend(
        DirectoryBackend(pytester.path / ".pytest_cache")
    )
    assert set(durations) == {"test_a.py::test_one"}


def test_damaged_history_is_reported_and_rewritten(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
    key = store.tests_key(store.bucket_of("test_a.py"))
    path = pytester.path / ".pytest_cache" / "v" / key
    path.write_text("[1, 2")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([f"*test history: {key!r} is not valid JSON*"])
    assert history_of(pytester.path).tests["test_a.py::test_one"].outcomes == "P"


def test_a_stuck_lock_keeps_the_run_for_the_next_session(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n")
    backend = DirectoryBackend(pytester.path / ".pytest_cache")
    with backend.lock(store.LOCK_KEY):
        result = pytester.runpytest("-o", "cache_lock_timeout=0.2")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*test history of this run is kept in *.crosscache-history-pending*"]
    )
    assert history_keys(pytester.path) == []
    pending = pytester.path / ".pytest_cache" / ".crosscache-history-pending"
    assert len(list(pending.iterdir())) == 1
    pytester.runpytest().assert_outcomes(passed=1)
    history = history_of(pytester.path)
    assert history.tests["test_a.py::test_one"].outcomes == "PP"
    assert len(history.runs) == 2
    assert list(pending.iterdir()) == []


def test_unusable_pending_runs_are_reported_and_removed(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n")
    pending = pytester.path / ".pytest_cache" / ".crosscache-history-pending"
    pending.mkdir(parents=True)
    (pending / "0-bad.json").write_text("{not json")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*left out the unusable pending run *0-bad.json*"])
    assert list(pending.iterdir()) == []
    assert history_of(pytester.path).tests["test_a.py::test_one"].outcomes == "P"


def test_xdist_controller_records_each_test_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_a="import pytest\n@pytest.mark.parametrize('n', range(6))\n"
        "def test_n(n): assert n != 3\n"
    )
    run_subprocess(pytester.path, "-n", "2", "-p", "xdist")
    history = history_of(pytester.path)
    assert len(history.runs) == 1
    assert {t.outcomes for t in history.tests.values()} == {"P", "F"}
    assert len(history.tests) == 6


@pytest.mark.parametrize("workers", [(), ("-n", "2", "-p", "xdist")])
def test_a_pass_on_rerun_is_flaky_at_once(pytester: pytest.Pytester, workers) -> None:
    pytester.makepyfile(test_f=FLAKY_ONCE, test_g="def test_red(): assert 0\n")
    out = run_subprocess(
        pytester.path,
        "--reruns",
        "1",
        *workers,
        FLAKY_MARKER=str(pytester.path / "marker"),
    )
    tests = history_of(pytester.path).tests
    assert tests["test_f.py::test_flaky"].outcomes == "R"
    assert tests["test_g.py::test_red"].outcomes == "F"
    # It passed in the end: the section names only tests that failed.
    assert "known flaky" not in out
    (pytester.path / "marker").unlink()
    pytester.makepyfile(
        test_f=FLAKY_ONCE.replace('"first attempt"', '"always"').replace(
            "marker.touch()\n", "marker.touch()\n        marker.unlink()\n"
        )
    )
    out = run_subprocess(
        pytester.path,
        "--reruns",
        "1",
        *workers,
        FLAKY_MARKER=str(pytester.path / "marker"),
    )
    assert history_of(pytester.path).tests["test_f.py::test_flaky"].outcomes == "RF"
    assert "known flaky tests that failed in this run" in out
    assert (
        "FLAKY test_f.py::test_flaky - passed on a rerun after failing in 1 of "
        "the last 2 runs" in out
    )
    section = out.split("known flaky")[1].split("short test summary")[0]
    assert "test_red" not in section


def test_cache_show_lists_the_history_only_when_asked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_a="def test_one(): pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--cache-show")
    assert "crosscache/history" not in result.stdout.str()
    result.stdout.fnmatch_lines(["cache/nodeids contains:"])
    result = pytester.runpytest("--cache-show", "history/**/*")
    result.stdout.fnmatch_lines(
        [
            "crosscache/history/durations/* contains:",
            "crosscache/history/runs contains:",
            "crosscache/history/tests/* contains:",
        ]
    )


LOADED_AT_COLLECTION = """
import sys

def pytest_collection_finish(session):
    loaded = sorted(
        name for name in sys.modules if name.startswith("pytest_crosscache.history")
    )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line("LOADED " + repr(loaded))
"""


def test_start_up_imports_neither_the_store_nor_attrs_records(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(LOADED_AT_COLLECTION)
    pytester.makepyfile(test_a="def test_one(): pass\n")
    result = pytester.runpytest_subprocess()
    result.stdout.fnmatch_lines(
        [
            "LOADED ['pytest_crosscache.history', 'pytest_crosscache.history.outcomes',"
            " 'pytest_crosscache.history.recorder', 'pytest_crosscache.history.settings']"
        ]
    )
