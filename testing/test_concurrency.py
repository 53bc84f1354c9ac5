"""Concurrent sessions and killed writers never lose or tear cache state.

Everything here uses real processes: pytest sessions started side by side,
writers killed with SIGKILL in the middle of large writes, and a stress run
mixing updates, reads and kills.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import QUIET_INNER_PLUGINS
from pytest_crosscache import Cache
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.fs.atomic import is_temporary

SESSIONS = 8
FAILURES_PER_SESSION = 3

# Every session waits here until all of them have finished their tests, so
# that all of them merge their records into the cache at the same moment:
# the worst case for a read-at-start, overwrite-at-end provider.
BARRIER_CONFTEST = """
import os, time
from pathlib import Path

import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    barrier = Path(os.environ["BARRIER_DIR"])
    barrier.joinpath(str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.iterdir())) < int(os.environ["BARRIER_SIZE"]):
        if time.monotonic() > deadline:
            raise RuntimeError("barrier timed out")
        time.sleep(0.01)
"""


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTEST_ADDOPTS"] = " ".join(QUIET_INNER_PLUGINS)
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        env.pop(name, None)
    return env


def _run_sessions_concurrently(
    pytester: pytest.Pytester, arglists: list[list[str]], tag: str
) -> None:
    barrier = pytester.path / f"barrier-{tag}"
    barrier.mkdir()
    env = _subprocess_env()
    env["BARRIER_DIR"] = str(barrier)
    env["BARRIER_SIZE"] = str(len(arglists))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", *args],
            cwd=pytester.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for args in arglists
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        # 1: tests failed, as designed.  Anything else is a broken session.
        assert proc.returncode in (0, 1), out.decode()
        assert b"PytestCacheWarning" not in out, out.decode()


def _make_shards(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(BARRIER_CONFTEST)
    for shard in range(SESSIONS):
        body = "\n".join(
            f"def test_fail_{n}():\n    assert False\n"
            for n in range(FAILURES_PER_SESSION)
        )
        pytester.makepyfile(
            **{f"test_shard{shard}": body + "\ndef test_ok():\n    pass\n"}
        )


def _lastfailed(pytester: pytest.Pytester) -> dict[str, bool]:
    path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    data: dict[str, bool] = json.loads(path.read_text("utf-8"))
    return data


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_sessions_keep_every_failure(
    pytester: pytest.Pytester, round_: int
) -> None:
    _make_shards(pytester)
    _run_sessions_concurrently(
        pytester, [[f"test_shard{shard}.py"] for shard in range(SESSIONS)], "run"
    )

    expected = {
        f"test_shard{shard}.py::test_fail_{n}"
        for shard in range(SESSIONS)
        for n in range(FAILURES_PER_SESSION)
    }
    assert set(_lastfailed(pytester)) == expected

    result = pytester.runpytest("--lf", "--collect-only", "-q")
    selected = {line for line in result.outlines if "::" in line}
    assert selected == expected
    nodeids = json.loads(
        (pytester.path / ".pytest_cache/v/cache/nodeids").read_text("utf-8")
    )
    assert len(nodeids) == SESSIONS * (FAILURES_PER_SESSION + 1)
    assert nodeids == sorted(nodeids)


def test_concurrent_fixes_and_failures_merge(pytester: pytest.Pytester) -> None:
    """Half the shards fix their failures while the other half still fail."""
    _make_shards(pytester)
    _run_sessions_concurrently(
        pytester, [[f"test_shard{shard}.py"] for shard in range(SESSIONS)], "first"
    )
    fixed = range(0, SESSIONS, 2)
    for shard in fixed:
        pytester.makepyfile(
            **{
                f"test_shard{shard}": "def test_fail_0():\n    pass\n"
                "def test_fail_1():\n    pass\n"
                "def test_fail_2():\n    pass\n"
                "def test_ok():\n    pass\n"
            }
        )
    _run_sessions_concurrently(
        pytester, [[f"test_shard{shard}.py"] for shard in range(SESSIONS)], "second"
    )
    expected = {
        f"test_shard{shard}.py::test_fail_{n}"
        for shard in range(1, SESSIONS, 2)
        for n in range(FAILURES_PER_SESSION)
    }
    assert set(_lastfailed(pytester)) == expected


def test_later_session_wins_for_the_same_test(pytester: pytest.Pytester) -> None:
    """A test still failing in the session that finishes last stays recorded."""
    pytester.makepyfile(
        test_flaky="""
        import os
        def test_flaky():
            assert os.environ.get("FLAKY_PASSES") == "1"
        """
    )
    env = _subprocess_env()
    base = [sys.executable, "-m", "pytest", "-q"]

    def run(passes: bool) -> None:
        env["FLAKY_PASSES"] = "1" if passes else "0"
        subprocess.run(base, cwd=pytester.path, env=env, check=False, timeout=60)

    run(passes=False)
    assert "test_flaky.py::test_flaky" in _lastfailed(pytester)
    run(passes=True)
    assert _lastfailed(pytester) == {}
    run(passes=False)
    assert "test_flaky.py::test_flaky" in _lastfailed(pytester)


LARGE_WRITER = """
import itertools, sys
from pathlib import Path
from pytest_crosscache import Cache

cache = Cache(Path(sys.argv[1]))
payload = "x" * 2_000_000
print("ready", flush=True)
for i in itertools.count():
    cache.set("big/value", {"writer": sys.argv[2], "i": i, "payload": payload})
"""


def test_sigkill_during_large_writes_never_tears_values(tmp_path: Path) -> None:
    cachedir = tmp_path / "cache"
    value_path = cachedir / "v" / "big" / "value"
    rng = random.Random(20261122)
    kills = 0
    parsed = 0
    for round_ in range(5):
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", LARGE_WRITER, str(cachedir), f"{round_}-{n}"],
                stdout=subprocess.PIPE,
            )
            for n in range(3)
        ]
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stdout.readline() == b"ready\n"
        for writer in writers:
            time.sleep(rng.uniform(0.01, 0.15))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            assert writer.stdout is not None
            writer.stdout.close()
            kills += 1
            if value_path.exists():
                value = json.loads(value_path.read_text("utf-8"))
                assert len(value["payload"]) == 2_000_000
                parsed += 1
    assert kills == 15
    assert parsed == 15

    # Killed writers may leave temporary files; they are never values ...
    cache = Cache(cachedir)
    assert list(cache.backend.keys("*")) == ["big/value"]
    # ... and housekeeping removes them without touching anything else.
    backend = cache.backend
    assert isinstance(backend, DirectoryBackend)
    backend.remove_abandoned(older_than=0)
    leftovers = [p for p in cachedir.rglob("*") if is_temporary(p.name)]
    assert leftovers == []
    assert cache.get("big/value", None)["payload"] == "x" * 2_000_000


STRESS_WORKER = """
import random, sys
from pathlib import Path
from pytest_crosscache import Cache

cache = Cache(Path(sys.argv[1]))
me = sys.argv[2]
rng = random.Random(me)
for j in range(40):
    entry = f"{me}-{j}"
    cache.update("stress/failures", lambda d: {**d, entry: True}, {})
    cache.update("stress/counter", lambda n: n + 1, 0)
    # Printed once both updates returned: a printed entry is committed.
    print(entry, flush=True)
    cache.set(f"stress/own/{me}", {"j": j, "blob": "y" * rng.randrange(1, 200_000)})
    seen = cache.get("stress/failures", None)
    assert isinstance(seen, dict) and entry in seen, entry
"""


def test_stress_updates_reads_and_kills(tmp_path: Path) -> None:
    cachedir = tmp_path / "cache"
    rng = random.Random(7)
    workers = {
        f"w{n}": subprocess.Popen(
            [sys.executable, "-c", STRESS_WORKER, str(cachedir), f"w{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(6)
    }
    victims = rng.sample(sorted(workers), 3)
    time.sleep(rng.uniform(0.3, 0.8))
    for name in victims:
        workers[name].send_signal(signal.SIGKILL)

    committed: set[str] = set()
    for name, proc in workers.items():
        out, err = proc.communicate(timeout=120)
        if name in victims:
            assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        else:
            assert proc.returncode == 0, err.decode()
            assert len(out.splitlines()) == 40
        committed.update(line.decode() for line in out.splitlines())

    cache = Cache(cachedir)
    failures = cache.get("stress/failures", None)
    assert isinstance(failures, dict)
    # Every update a worker saw complete is in the final record.
    assert committed <= set(failures)
    assert cache.get("stress/counter", 0) >= len(committed)
    # Every stored value parses.
    for key in cache.backend.keys("*"):
        data = cache.backend.read(key)
        assert data is not None
        json.loads(data)


def test_xdist_workers_setting_one_key_leave_a_whole_value(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_hammer(cache, n):
            for i in range(20):
                cache.set("shared/blob", {"n": n, "i": i, "data": "z" * 300_000})
                value = cache.get("shared/blob", None)
                assert value is not None and len(value["data"]) == 300_000
        """
    )
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=8)
    stored = json.loads(
        (pytester.path / ".pytest_cache/v/shared/blob").read_text("utf-8")
    )
    assert len(stored["data"]) == 300_000


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from pytest_crosscache import Cache

with Cache(Path(sys.argv[1])).lock("cache/lastfailed"):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_lock_wait_is_bounded_and_a_killed_holder_frees_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_fails():\n    assert False\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(pytester.path / ".pytest_cache")],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        result = pytester.runpytest("-o", "cache_lock_timeout=0.2")
        # The session's outcome is unchanged; the warning says what it waited for.
        result.assert_outcomes(failed=1, warnings=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            [
                "*PytestCacheWarning: cache value 'cache/lastfailed' was not written:"
                " gave up after 0.2s waiting for the lock on cache key"
                " 'cache/lastfailed' (*/v/cache/lastfailed); another pytest process holds it*",
            ]
        )
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    # The kernel released the dead holder's lock: the next session records.
    pytester.runpytest("-o", "cache_lock_timeout=5").assert_outcomes(failed=1)
    assert _lastfailed(pytester) == {
        "test_lock_wait_is_bounded_and_a_killed_holder_frees_it.py::test_fails": True
    }


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_bad_lock_timeout_is_a_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("-o", f"cache_lock_timeout={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*cache_lock_timeout must be a number of seconds >= 0, got '{value}'*"]
    )
