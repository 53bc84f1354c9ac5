"""Whole pytest sessions sharing one Redis server: several machines, shards, outages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import QUIET_INNER_PLUGINS
from redis_server import PASSWORD
from redis_server import RedisServer
from redis_server import free_port

FAILING = """
def test_ok():
    pass

def test_broken():
    assert 0
"""


def make_checkout(
    base: Path, machine: str, project: str, files: dict[str, str]
) -> Path:
    """A checkout of ``project`` on ``machine``: same rootdir name, own cache dir."""
    root = base / machine / project
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def run_in(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    root: Path,
    *args: str,
) -> pytest.RunResult:
    monkeypatch.chdir(root)
    return pytester.runpytest(*args)


@pytest.fixture
def project() -> str:
    """A project name used by no other test: its default namespace."""
    return f"proj-{uuid.uuid4().hex[:12]}"


def test_failure_on_one_machine_is_rerun_by_lf_on_another(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    project: str,
) -> None:
    files = {"test_a.py": FAILING}
    machine_a = make_checkout(pytester.path, "a", project, files)
    machine_b = make_checkout(pytester.path, "b", project, files)
    backend = f"--cache-backend={redis_server.url}"

    first = run_in(pytester, monkeypatch, machine_a, backend)
    first.assert_outcomes(passed=1, failed=1)
    # The rootdir's name is the default namespace: the same on both machines.
    assert redis_server.stored(project, "cache/lastfailed") == {
        "test_a.py::test_broken": True
    }
    # Machine a also keeps a local copy, readable by pytest's own provider.
    local = machine_a / ".pytest_cache" / "v" / "cache" / "lastfailed"
    assert json.loads(local.read_text()) == {"test_a.py::test_broken": True}

    second = run_in(pytester, monkeypatch, machine_b, backend, "--lf", "-v")
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines(
        [
            f"cache backend: redis://:***@{redis_server.address}/0 (namespace '{project}')"
        ]
    )
    second.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
    assert PASSWORD not in second.stdout.str()


def test_environment_and_ini_select_the_backend(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_namespace: str,
) -> None:
    pytester.makepyfile(test_a=FAILING)
    monkeypatch.setenv("MY_NAMESPACE", redis_namespace)
    monkeypatch.setenv("SECRET_URL", redis_server.url)
    pytester.makeini(
        "[pytest]\ncache_backend = ${SECRET_URL}\ncache_namespace = ${MY_NAMESPACE}\n"
    )
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    assert redis_server.stored(redis_namespace, "cache/lastfailed") == {
        "test_a.py::test_broken": True
    }
    # The environment variable beats the ini setting.
    monkeypatch.setenv("PYTEST_CACHE_BACKEND", "memcached://:hunter2@nowhere")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: unsupported cache backend URL 'memcached://:***@nowhere'*"]
    )
    assert "hunter2" not in result.stdout.str() + result.stderr.str()


def test_cache_show_lists_remote_values_without_password(
    pytester: pytest.Pytester, redis_server: RedisServer, redis_namespace: str
) -> None:
    pytester.makepyfile(test_a=FAILING)
    args = (
        f"--cache-backend={redis_server.url}",
        "-o",
        f"cache_namespace={redis_namespace}",
    )
    pytester.runpytest(*args)
    # Another machine: nothing local, everything from Redis.
    result = pytester.runpytest(*args, "-o", "cache_dir=elsewhere", "--cache-show")
    result.stdout.fnmatch_lines(
        ["cache/lastfailed contains:", "  {'test_a.py::test_broken': True}"]
    )
    assert PASSWORD not in result.stdout.str()
    cleared = pytester.runpytest(*args, "--cache-clear", "--cache-show")
    assert "cache/lastfailed" not in cleared.stdout.str()
    assert redis_server.stored(redis_namespace, "cache/lastfailed") is None


def test_concurrent_shards_on_different_machines_keep_all_failures(
    pytester: pytest.Pytester, redis_server: RedisServer, project: str
) -> None:
    shards = 4
    files = {
        f"test_shard{i}.py": (
            "import time\n\n"
            "def test_slow():\n    time.sleep(1)\n\n"
            f"def test_fail_{i}():\n    assert 0\n"
        )
        for i in range(shards)
    }
    env = dict(os.environ, PYTEST_ADDOPTS=" ".join(QUIET_INNER_PLUGINS))
    env.pop("PYTEST_XDIST_WORKER", None)
    env["PYTEST_CACHE_BACKEND"] = redis_server.url
    processes = []
    for i in range(shards):
        root = make_checkout(pytester.path, f"machine{i}", project, files)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "pytest", "-p", "no:xdist", f"test_shard{i}.py"],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 1, output
        assert "PytestCacheWarning" not in output
    assert redis_server.stored(project, "cache/lastfailed") == {
        f"test_shard{i}.py::test_fail_{i}": True for i in range(shards)
    }
    nodeids = redis_server.stored(project, "cache/nodeids")
    assert isinstance(nodeids, list)
    assert len(nodeids) == 2 * shards


KILLER = """
import os, signal

def test_fail_before():
    assert 0

def test_redis_goes_away():
    os.kill(int(os.environ["REDIS_PID"]), signal.SIGKILL)

def test_fail_after():
    assert 0
"""


def test_redis_lost_during_a_run(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    own_redis_server: RedisServer,
    project: str,
) -> None:
    server = own_redis_server
    root = make_checkout(pytester.path, "a", project, {"test_k.py": KILLER})
    assert server.process is not None
    monkeypatch.setenv("REDIS_PID", str(server.process.pid))
    result = run_in(pytester, monkeypatch, root, f"--cache-backend={server.url}")
    # The same outcome as without Redis, and exactly one warning.
    result.assert_outcomes(passed=1, failed=2, warnings=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str()
    assert output.count("is unreachable") == 1
    assert server.address in output
    assert PASSWORD not in output
    server.process.wait()
    server.process = None

    # Redis is back (empty: it persisted nothing).  The next session that
    # reaches it sends what the failed one recorded.
    server.start()
    again = run_in(pytester, monkeypatch, root, f"--cache-backend={server.url}", "--co")
    assert again.ret == pytest.ExitCode.OK
    assert server.stored(project, "cache/lastfailed") == {
        "test_k.py::test_fail_before": True,
        "test_k.py::test_fail_after": True,
    }
    # And a fresh machine reruns them with --lf.
    other = make_checkout(pytester.path, "b", project, {"test_k.py": KILLER})
    monkeypatch.setenv("REDIS_PID", "0")  # nothing to kill: --lf deselects it
    lf = run_in(pytester, monkeypatch, other, f"--cache-backend={server.url}", "--lf")
    lf.assert_outcomes(failed=2)


def test_unreachable_at_start_keeps_the_outcome(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_a=FAILING)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    result = pytester.runpytest(f"--cache-backend={url}")
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    assert result.stdout.str().count("is unreachable") == 1
    assert PASSWORD not in result.stdout.str()
    # The local tier has the record: --lf works on this machine meanwhile.
    lf = pytester.runpytest(f"--cache-backend={url}", "--lf")
    lf.assert_outcomes(failed=1, warnings=1)


def test_xdist_with_redis(
    pytester: pytest.Pytester, redis_server: RedisServer, redis_namespace: str
) -> None:
    pytester.makepyfile(test_a=FAILING, test_b=FAILING)
    args = (
        "-p",
        "xdist",
        "-n",
        "2",
        f"--cache-backend={redis_server.url}",
        "-o",
        f"cache_namespace={redis_namespace}",
    )
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2, failed=2)
    assert redis_server.stored(redis_namespace, "cache/lastfailed") == {
        "test_a.py::test_broken": True,
        "test_b.py::test_broken": True,
    }
    lf = pytester.runpytest_subprocess(*args, "--lf")
    lf.assert_outcomes(failed=2)
