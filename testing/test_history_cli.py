"""The history commands and the issue's acceptance scenarios, with real runs.

Inner sessions run as subprocesses with the environment a CI job or a
developer's shell would give them (``CI``, a commit variable, or a git
checkout); the ``crosscache`` command reads what they recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUIET_INNER_PLUGINS
from conftest import Cli
from pytest_crosscache.history.revision import CI_VARIABLE
from pytest_crosscache.history.revision import COMMIT_VARIABLES

SHA_A = "a" * 40
SHA_B = "b" * 40

# Passes or fails as the environment says: the same code, different luck.
MOODY = """
import os

def test_moody():
    assert os.environ.get("MOOD") != "bad"

def test_steady():
    pass
"""

BARRIER = """
import os, time
from pathlib import Path

import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    barrier = os.environ.get("BARRIER_DIR")
    if not barrier or hasattr(session.config, "workerinput"):
        return
    Path(barrier, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(barrier)) < int(os.environ["BARRIER_SIZE"]):
        if time.monotonic() > deadline:
            raise RuntimeError("barrier timed out")
        time.sleep(0.01)
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The outer environment without CI markers, plus ``extra``."""
    ci_names = {CI_VARIABLE, *(variable for _, variable in COMMIT_VARIABLES)}
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ci_names and not name.startswith("PYTEST_XDIST")
    }
    env.pop("PYTEST_CACHE_BACKEND", None)
    env["PYTEST_ADDOPTS"] = " ".join(QUIET_INNER_PLUGINS)
    env.update(extra)
    return env


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", *args]


def run(root: Path, *args: str, **env: str) -> str:
    proc = subprocess.run(
        pytest_cmd(*args),
        cwd=root,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output
    assert "PytestCacheWarning" not in output, output
    return proc.stdout


def crosscache(root: Path, *args: str) -> object:
    """Run the installed ``crosscache`` script; parse its JSON output."""
    script = Path(sys.executable).with_name("crosscache")
    proc = subprocess.run(
        [str(script), *args, "--json"],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


def nodeids(entries: object) -> list[str]:
    assert isinstance(entries, list)
    return [entry["nodeid"] for entry in entries]


class ProjectCli(Cli):
    """The command in-process, in a given directory."""

    def __init__(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        super().__init__(capsys)
        self.monkeypatch = monkeypatch

    def __call__(self, root: Path, *args: str) -> tuple[int, str, str]:  # type: ignore[override]
        self.monkeypatch.chdir(root)
        return super().__call__(*args)

    def json(self, root: Path, *args: str) -> object:
        status, out, err = self(root, *args, "--json")
        assert status == 0, err
        return json.loads(out)


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> ProjectCli:
    for name in (CI_VARIABLE, *(variable for _, variable in COMMIT_VARIABLES)):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PYTEST_CACHE_BACKEND", raising=False)
    return ProjectCli(capsys, monkeypatch)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_moody=MOODY)
    return pytester.path


# --- flaky or not: the acceptance scenarios ----------------------------------


def test_pass_and_fail_on_one_ci_commit_is_flaky(project: Path) -> None:
    run(project, CI="true", GITHUB_SHA=SHA_A)
    out = run(project, CI="true", GITHUB_SHA=SHA_A, MOOD="bad")
    assert "known flaky tests that failed in this run" in out
    assert (
        "FLAKY test_moody.py::test_moody - failed 1 of the last 2 runs on commit "
        "aaaaaaa" in out
    )
    flaky = crosscache(project, "flaky")
    assert nodeids(flaky) == ["test_moody.py::test_moody"]
    assert flaky[0]["status"] == "flaky"  # type: ignore[index]


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=root,
        check=True,
        capture_output=True,
        env={"PATH": os.environ["PATH"], "HOME": str(root)},
    )


def test_a_local_edit_fail_fix_loop_is_not_flaky(
    pytester: pytest.Pytester, cli: ProjectCli
) -> None:
    test = pytester.makepyfile(test_edit="def test_edit():\n    assert 1 == 2\n")
    git(pytester.path, "init", "-q")
    git(pytester.path, "add", "-A")
    git(pytester.path, "commit", "-q", "-m", "broken")
    run(pytester.path)
    test.write_text("def test_edit():\n    assert 1 == 1\n")  # not committed
    run(pytester.path)
    run(pytester.path)
    assert cli.json(pytester.path, "flaky") == []
    (verdict,) = cli.json(pytester.path, "flaky", "--all")  # type: ignore[misc]
    assert verdict["status"] == "fixed"
    (entry,) = cli.json(pytester.path, "history", "test_edit.py::test_edit")  # type: ignore[misc]
    assert entry["runs"] == 3
    assert entry["outcomes"] == "FPP"
    assert len({run["revision"] for run in entry["history"]}) == 1


def test_broken_on_one_commit_and_fixed_on_the_next_is_not_flaky(
    project: Path, cli: ProjectCli
) -> None:
    run(project, CI="true", GITHUB_SHA=SHA_A, MOOD="bad")
    run(project, CI="true", GITHUB_SHA=SHA_A, MOOD="bad")
    run(project, CI="true", GITHUB_SHA=SHA_B)
    assert cli.json(project, "flaky") == []
    statuses = {v["nodeid"]: v["status"] for v in cli.json(project, "flaky", "--all")}  # type: ignore[union-attr]
    assert statuses["test_moody.py::test_moody"] == "fixed"


def test_a_pass_on_rerun_is_listed_as_flaky(
    pytester: pytest.Pytester, cli: ProjectCli
) -> None:
    pytester.makepyfile(
        test_once="""
        import os
        from pathlib import Path

        def test_once():
            marker = Path(os.environ["MARKER"])
            if not marker.exists():
                marker.touch()
                assert 0
        """
    )
    run(pytester.path, "--reruns", "2", MARKER=str(pytester.path / "marker"))
    (verdict,) = cli.json(pytester.path, "flaky")  # type: ignore[misc]
    assert verdict["nodeid"] == "test_once.py::test_once"
    assert "rerun" in verdict["evidence"]


# --- slowest ----------------------------------------------------------------

SLEEPY = """
import time
import pytest

@pytest.mark.parametrize("seconds", [0.1, 0.2, 0.3])
def test_sleep(seconds):
    time.sleep(seconds)
"""


def test_slowest_measures_what_the_tests_took(project: Path, cli: ProjectCli) -> None:
    (project / "test_sleep.py").write_text(SLEEPY)
    run(project, "test_sleep.py")
    run(project, "test_sleep.py", "-n", "2", "-p", "xdist")
    slowest = cli.json(project, "slowest", "-n", "3")
    assert nodeids(slowest) == [
        f"test_sleep.py::test_sleep[{s}]" for s in ("0.3", "0.2", "0.1")
    ]
    for entry, slept in zip(slowest, (0.3, 0.2, 0.1), strict=True):  # type: ignore[arg-type]
        assert slept * 0.98 <= entry["duration"] <= slept * 1.2
    status, out, _ = cli(project, "slowest", "-n", "1")
    assert status == 0
    assert out.split() == [out.split()[0], "test_sleep.py::test_sleep[0.3]"]


def test_nothing_recorded(pytester: pytest.Pytester, cli: ProjectCli) -> None:
    for command in ("slowest", "flaky"):
        assert cli.json(pytester.path, command) == []
    status, out, _ = cli(pytester.path, "history", "--json", "nothing::*")
    assert (status, json.loads(out)) == (1, [])
    assert cli(pytester.path, "slowest")[1] == "no test durations recorded\n"
    assert cli(pytester.path, "slowest", "-n", "0")[0] == 2


def test_history_table_and_globs(project: Path, cli: ProjectCli) -> None:
    run(project, CI="true", GITHUB_SHA=SHA_A)
    run(project, MOOD="bad")
    status, out, _ = cli(project, "history", "test_moody.py")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("test_moody.py::test_moody: 2 runs, median ")
    assert lines[0].endswith("failing (failed the last run)")
    assert lines[1].split()[2:5] == ["-", "local", "failed"]
    assert lines[2].split()[2:5] == ["aaaaaaaaaaaa", "CI", "passed"]
    assert nodeids(cli.json(project, "history", "*::test_st*")) == [
        "test_moody.py::test_steady"
    ]


# --- every run counted once: sessions side by side, shards, a Redis fleet ----


def run_concurrently(
    roots: list[Path], tag: Path, arglists: list[list[str]], **env: str
) -> None:
    tag.mkdir()
    procs = [
        subprocess.Popen(
            pytest_cmd(*args),
            cwd=root,
            env=clean_env(BARRIER_DIR=str(tag), BARRIER_SIZE=str(len(roots)), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for root, args in zip(roots, arglists, strict=True)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode in (0, 1), out
        assert "PytestCacheWarning" not in out, out


def runs_per_test(entries: object) -> dict[str, list[str]]:
    assert isinstance(entries, list)
    return {e["nodeid"]: [r["run"] for r in e["history"]] for e in entries}


def test_sessions_shards_and_merges_count_every_run_once(
    project: Path, cli: ProjectCli
) -> None:
    (project / "conftest.py").write_text(BARRIER)
    run_concurrently([project] * 4, project / "barrier", [[]] * 4)
    runs = runs_per_test(cli.json(project, "history", "*"))
    assert set(runs) == {"test_moody.py::test_moody", "test_moody.py::test_steady"}
    first = runs["test_moody.py::test_moody"]
    assert len(first) == len(set(first)) == 4
    assert runs["test_moody.py::test_steady"] == first

    # Three CI shards restore the same cache, each runs its part, and the
    # caches are merged back: twice, as a retried job would.
    cache = project / ".pytest_cache"
    shards = []
    for number, test in enumerate(["test_moody", "test_steady", "test_moody"]):
        shard = project / f"shard{number}"
        shutil.copytree(cache, shard)
        run(project, "-o", f"cache_dir={shard}", f"test_moody.py::{test}")
        shards.append(str(shard))
    for _ in range(2):
        status, out, err = cli(project, "merge", "--into", str(cache), *shards)
        assert status == 0, err
        assert out.rstrip().endswith("7 runs in the test history")
    runs = runs_per_test(cli.json(project, "history", "*"))
    assert len(runs["test_moody.py::test_moody"]) == 6
    assert len(runs["test_moody.py::test_steady"]) == 5
    for ids in runs.values():
        assert len(ids) == len(set(ids))
        assert ids[:4] == first


def test_a_redis_fleet_counts_every_run_once(
    pytester: pytest.Pytester, redis_server, redis_namespace: str, cli: ProjectCli
) -> None:
    checkouts = []
    for machine in ("m1", "m2", "m3"):
        root = pytester.path / machine / "proj"
        root.mkdir(parents=True)
        (root / "pytest.ini").write_text(
            f"[pytest]\ncache_backend = {redis_server.url}\n"
            f"cache_namespace = {redis_namespace}\n"
        )
        (root / "test_moody.py").write_text(MOODY)
        (root / "conftest.py").write_text(BARRIER)
        checkouts.append(root)
    run_concurrently(checkouts, pytester.path / "barrier", [[]] * 3, CI="1")
    seen = []
    for root in checkouts:
        runs = runs_per_test(cli.json(root, "history", "*"))
        assert {len(set(ids)) for ids in runs.values()} == {3}
        seen.append(runs)
    assert seen[0] == seen[1] == seen[2]


# --- durations import and export --------------------------------------------


def test_export_is_pytest_splits_format_and_imports_back(
    project: Path, cli: ProjectCli, tmp_path: Path
) -> None:
    run(project)
    status, out, _ = cli(project, "durations", "--export")
    assert status == 0
    exported = json.loads(out)
    assert set(exported) == {"test_moody.py::test_moody", "test_moody.py::test_steady"}
    assert out == json.dumps(exported, sort_keys=True, indent=4) + "\n"
    target = tmp_path / "durations.json"
    assert cli(project, "durations", "--export", str(target))[0] == 0
    assert json.loads(target.read_text()) == exported

    other = tmp_path / "other"
    other.mkdir()
    (other / "pytest.ini").write_text("[pytest]\n")
    status, out, _ = cli(other, "durations", "--import", str(target))
    assert (status, out) == (0, f"imported 2 test durations from {target}\n")
    assert cli.json(other, "slowest") == cli.json(project, "slowest")


def test_import_of_old_pairs_keeps_measured_durations(
    project: Path, cli: ProjectCli
) -> None:
    run(project)
    measured = {e["nodeid"]: e["duration"] for e in cli.json(project, "slowest")}  # type: ignore[union-attr]
    old = project / ".test_durations"
    old.write_text(
        json.dumps([["test_moody.py::test_moody", 50.0], ["test_new.py::test_x", 7]])
    )
    status, out, _ = cli(project, "durations", "--import", str(old))
    assert status == 0
    assert out == (
        f"imported 1 test durations from {old}; 1 tests kept their measured durations\n"
    )
    slowest = {e["nodeid"]: e["duration"] for e in cli.json(project, "slowest")}  # type: ignore[union-attr]
    assert slowest["test_new.py::test_x"] == 7.0
    assert slowest["test_moody.py::test_moody"] == measured["test_moody.py::test_moody"]


def test_import_of_a_real_junit_report(
    pytester: pytest.Pytester, cli: ProjectCli
) -> None:
    pytester.makepyfile(
        **{
            "tests/test_deep": """
            import time
            class TestGroup:
                def test_method(self):
                    time.sleep(0.05)
            def test_plain():
                pass
            """
        }
    )
    (pytester.path / "tests" / "__init__.py").write_text("")
    report = pytester.path / "report.xml"
    run(pytester.path, f"--junitxml={report}", "-o", "cache_history=false")
    status, out, err = cli(pytester.path, "durations", "--import", str(report))
    assert (status, out, err) == (0, f"imported 2 test durations from {report}\n", "")
    slowest = cli.json(pytester.path, "slowest")
    assert nodeids(slowest) == [
        "tests/test_deep.py::TestGroup::test_method",
        "tests/test_deep.py::test_plain",
    ]
    assert slowest[0]["duration"] >= 0.05  # type: ignore[index]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "neither JUnit XML nor pytest-split JSON"),
        ('"text"', "expected a JSON object of node id -> seconds, found str"),
        ('{"t.py::x": -1}', "'t.py::x': duration -1 is not a number of seconds"),
        ('{"t.py::x": "slow"}', "duration 'slow' is not a number of seconds"),
        ("[[1, 2, 3]]", "entry 0 is not a [node id, seconds] pair"),
        (
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite/>',
            "XML with a document type declaration",
        ),
        ("<testsuite><testcase name='x'", "invalid XML"),
        ("<html/>", "not a JUnit report: the root element is <html>"),
        ("<testsuite><testcase/></testsuite>", "testcase #1 has no name"),
    ],
)
def test_bad_import_files_exit_2_naming_the_file(
    pytester: pytest.Pytester, cli: ProjectCli, content: str, message: str
) -> None:
    bad = pytester.path / "bad-durations"
    bad.write_text(content)
    status, out, err = cli(pytester.path, "durations", "--import", str(bad))
    assert status == 2
    assert err.startswith(f"crosscache: error: {bad}: ")
    assert message in err
    assert out == ""


def test_missing_and_oversized_import_files(
    pytester: pytest.Pytester, cli: ProjectCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, _, err = cli(pytester.path, "durations", "--import", "absent.json")
    assert status == 2
    assert "cannot read 'absent.json'" in err
    from pytest_crosscache.cli import history

    monkeypatch.setattr(history, "MAX_IMPORT_BYTES", 10)
    (pytester.path / "big.json").write_text("{" + " " * 20 + "}")
    status, _, err = cli(pytester.path, "durations", "--import", "big.json")
    assert status == 2
    assert "not a durations file" in err


@pytest.mark.parametrize("command", ["history x", "slowest", "flaky"])
def test_commands_never_import_pytest(command: str) -> None:
    """The commands stay quick by not importing pytest (nor attrs for slowest)."""
    code = (
        "import sys; from pytest_crosscache.cli import main; "
        f"main(['--cache-dir', sys.argv[1], *{command.split()!r}]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', "
        "'_pytest')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, os.devnull],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_show_summarises_the_history(project: Path, cli: ProjectCli) -> None:
    run(project)
    status, out, _ = cli(project, "show")
    assert status == 0
    assert "crosscache/history/" not in out
    lines = out.splitlines()
    assert lines[-2].startswith("(and the test history: 3 values, ")
    assert lines[-2].endswith("crosscache show 'history/**/*' lists them)")
    assert lines[-1] == "1 value"
    status, out, _ = cli(project, "show", "history/**/*")
    assert out.count("crosscache/history/") == 3


def test_runs_recorded_during_a_redis_outage_are_united_with_the_servers(
    pytester: pytest.Pytester, own_redis_server, redis_namespace: str, cli: ProjectCli
) -> None:
    server = own_redis_server
    machines = []
    for machine in ("m1", "m2"):
        root = pytester.path / machine / "proj"
        root.mkdir(parents=True)
        (root / "pytest.ini").write_text(
            f"[pytest]\ncache_backend = {server.url}\n"
            f"cache_namespace = {redis_namespace}\n"
        )
        (root / "test_moody.py").write_text(MOODY)
        machines.append(root)
    m1, m2 = machines

    def session(root: Path) -> str:
        proc = subprocess.run(
            pytest_cmd(),
            cwd=root,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    session(m1)
    server.stop()
    assert "is unreachable" in session(m1)  # recorded locally, journaled
    server.start()  # empty: it persisted nothing
    session(m2)  # the server's history now holds m2's run only
    session(m1)  # replays m1's outage: both sides' runs are kept
    runs = runs_per_test(cli.json(m1, "history", "*"))
    assert {len(set(ids)) for ids in runs.values()} == {4}
