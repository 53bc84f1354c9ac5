"""A stuck lock holder never loses a session's records; a Redis lease that runs out is told.

Holders are real subprocesses stopped with ``SIGSTOP`` while they hold a
lock; Redis servers are real and paused the same way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_crosscache import RedisBackend
from pytest_crosscache._deferred import DEFERRED_DIR
from redis_server import RedisServer

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP and SIGCONT"
)

FAILING = """
def test_ok():
    pass

def test_broken():
    assert 0
"""

HOLDER = """
import sys, time
from pathlib import Path
from pytest_crosscache import Cache, RedisBackend

cachedir, key, url, namespace = sys.argv[1:5]
backend = None
if url:
    backend = RedisBackend.from_url(url, namespace=namespace, cachedir=Path(cachedir))
cache = Cache(Path(cachedir), backend)
with cache.lock(key):
    print("held", flush=True)
    time.sleep(600)
"""


@contextmanager
def stopped_holder(
    cachedir: Path, key: str, url: str = "", namespace: str = ""
) -> Iterator[subprocess.Popen[str]]:
    """A process that takes ``key``'s lock and is then stopped (SIGSTOP)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cachedir), key, url, namespace],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        process.send_signal(signal.SIGSTOP)
        yield process
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def deferred_files(root: Path) -> list[Path]:
    return sorted((root / ".pytest_cache" / DEFERRED_DIR).rglob("*.json"))


def local(root: Path, key: str) -> object:
    return json.loads((root / ".pytest_cache" / "v" / key).read_text())


def test_failures_survive_a_stopped_lastfailed_holder(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_a=FAILING)
    short = ("-o", "cache_lock_timeout=0.2")
    with stopped_holder(pytester.path / ".pytest_cache", "cache/lastfailed"):
        first = pytester.runpytest(*short)
        first.assert_outcomes(passed=1, failed=1, warnings=1)
        first.stdout.fnmatch_lines(
            [
                "*cache value 'cache/lastfailed' was not written: gave up after 0.2s*"
                "this session's update is kept in *"
            ]
        )
        assert len(deferred_files(pytester.path)) == 1
        # Readers see the deferred failure at once, while the holder is stuck.
        lf = pytester.runpytest(*short, "--lf")
        lf.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
        lf.assert_outcomes(failed=1)
        command = subprocess.run(
            [sys.executable, "-m", "pytest_crosscache", "lf"],
            cwd=pytester.path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "test_a.py::test_broken" in command.stdout
        # A second stuck session adds its own update, not a lost one.
        pytester.makepyfile(test_b="def test_new():\n    assert 0\n")
        second = pytester.runpytest(*short, "test_b.py")
        second.assert_outcomes(failed=1, warnings=1)
        assert len(deferred_files(pytester.path)) == 2
    # The holder is gone: the next session that updates merges everything
    # under the lock and removes the deferred files.
    pytester.makepyfile(test_c="def test_c():\n    assert 0\n")
    third = pytester.runpytest("test_c.py")
    third.assert_outcomes(failed=1)
    assert local(pytester.path, "cache/lastfailed") == {
        "test_a.py::test_broken": True,
        "test_b.py::test_new": True,
        "test_c.py::test_c": True,
    }
    assert deferred_files(pytester.path) == []


def test_fixes_survive_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=FAILING)
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    pytester.makepyfile(test_a=FAILING.replace("assert 0", "pass"))
    with stopped_holder(pytester.path / ".pytest_cache", "cache/lastfailed"):
        fixed = pytester.runpytest("-o", "cache_lock_timeout=0.1")
        fixed.assert_outcomes(passed=2, warnings=1)
        lf = pytester.runpytest("--lf", "-o", "cache_lock_timeout=0.1")
        lf.stdout.fnmatch_lines(["run-last-failure: no previously failed tests*"])
    pytester.makepyfile(test_b="def test_b():\n    assert 0\n")
    pytester.runpytest("test_b.py").assert_outcomes(failed=1)
    assert local(pytester.path, "cache/lastfailed") == {"test_b.py::test_b": True}


def test_new_tests_survive_a_stopped_nodeids_holder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=FAILING)
    with stopped_holder(pytester.path / ".pytest_cache", "cache/nodeids"):
        first = pytester.runpytest("-o", "cache_lock_timeout=0.2")
        first.assert_outcomes(passed=1, failed=1, warnings=1)
        assert "cache value 'cache/nodeids' was not written" in first.stdout.str()
        # --nf knows the deferred ids: only the new test counts as new.
        pytester.makepyfile(test_z="def test_z():\n    pass\n")
        nf = pytester.runpytest("-o", "cache_lock_timeout=0.2", "--nf", "-v")
        nf.stdout.fnmatch_lines(["test_z.py::test_z PASSED*", "test_a.py::test_ok*"])
    pytester.runpytest().assert_outcomes(passed=2, failed=1)
    assert local(pytester.path, "cache/nodeids") == [
        "test_a.py::test_broken",
        "test_a.py::test_ok",
        "test_z.py::test_z",
    ]
    assert deferred_files(pytester.path) == []


def test_stepwise_is_written_past_a_stopped_holder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=FAILING)
    with stopped_holder(pytester.path / ".pytest_cache", "cache/stepwise"):
        first = pytester.runpytest("--sw", "-o", "cache_lock_timeout=0.2")
        first.assert_outcomes(passed=1, failed=1)
        again = pytester.runpytest("--sw", "-o", "cache_lock_timeout=0.2")
        again.stdout.fnmatch_lines(["stepwise: skipping 1 already passed items*"])
    assert local(pytester.path, "cache/stepwise")["last_failed"] == (
        "test_a.py::test_broken"
    )


def test_clear_forgets_deferred_updates(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=FAILING)
    with stopped_holder(pytester.path / ".pytest_cache", "cache/lastfailed"):
        pytester.runpytest("-o", "cache_lock_timeout=0.1")
        assert deferred_files(pytester.path)
    pytester.runpytest("--cache-clear", "--co")
    assert deferred_files(pytester.path) == []


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"key": "cache/nodeids", "base": null, "ours": "[]"}',
        b'{"key": "cache/lastfailed", "base": 3, "ours": null}',
        b'{"key": "cache/lastfailed", "base": null, "ours": "{\\"x\\": 1"}',
        b"[]",
    ],
)
def test_foreign_deferred_files_are_skipped(
    pytester: pytest.Pytester, content: bytes
) -> None:
    from pytest_crosscache._deferred import Deferred

    pytester.makepyfile(test_a=FAILING)
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    deferred = Deferred(pytester.path / ".pytest_cache", "cache/lastfailed")
    deferred.directory.mkdir(parents=True)
    (deferred.directory / "0-odd.json").write_bytes(content)
    os.mkfifo(deferred.directory / "1-fifo.json")
    (deferred.directory / "2-link.json").symlink_to("/etc/passwd")
    lf = pytester.runpytest("--lf")
    lf.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
    lf.assert_outcomes(failed=1)


# -- Redis -------------------------------------------------------------------


def test_failures_survive_a_stopped_redis_lock_holder(
    pytester: pytest.Pytester, redis_server: RedisServer, redis_namespace: str
) -> None:
    pytester.makepyfile(test_a=FAILING)
    args = (
        f"--cache-backend={redis_server.url}",
        "-o",
        f"cache_namespace={redis_namespace}",
        "-o",
        "cache_lock_timeout=0.3",
    )
    lock = f"crosscache:{{{redis_namespace}}}:lock:cache/lastfailed"
    elsewhere = pytester.path / "holder-cache"
    with stopped_holder(
        elsewhere, "cache/lastfailed", redis_server.url, redis_namespace
    ):
        first = pytester.runpytest(*args)
        first.assert_outcomes(passed=1, failed=1, warnings=1)
        assert "this session's update is kept in" in first.stdout.str()
        assert redis_server.stored(redis_namespace, "cache/lastfailed") is None
        lf = pytester.runpytest(*args, "--lf")
        lf.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
        # The stopped holder cannot renew: its lease would run out; end it now.
        client = redis_server.client()
        client.delete(lock)
        client.close()
    pytester.makepyfile(test_b="def test_b():\n    assert 0\n")
    pytester.runpytest(*args, "test_b.py").assert_outcomes(failed=1)
    assert redis_server.stored(redis_namespace, "cache/lastfailed") == {
        "test_a.py::test_broken": True,
        "test_b.py::test_b": True,
    }
    assert deferred_files(pytester.path) == []


@contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        yield record


def cache_messages(record: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in record
        if issubclass(w.category, pytest.PytestCacheWarning)
    ]


def paused_for(server: RedisServer, seconds: float) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        server.process.send_signal(signal.SIGCONT)


def test_lease_keeps_renewing_after_a_failed_renewal(
    own_redis_server: RedisServer, tmp_path: Path, redis_namespace: str
) -> None:
    server = own_redis_server
    backend = RedisBackend.from_url(
        f"{server.url}?socket_timeout=0.2", namespace=redis_namespace, cachedir=tmp_path
    )
    backend._lease_seconds = 4.0
    admin = server.client()
    name = backend._lock_key("k")
    with recorded() as record:
        with backend.lock("k"):
            # A renewal (every 1.3 s, 0.2 s to answer) times out while the
            # server is stopped.
            paused_for(server, 2.0)
            # The renewal the server received while stopped runs when it
            # resumes; only renewals after that show the lease is still kept.
            time.sleep(2.0)
            deadline = time.monotonic() + 5
            while admin.pttl(name) < 3500:
                assert time.monotonic() < deadline, "the lease was not renewed"
                time.sleep(0.05)
        assert admin.get(name) is None
    assert cache_messages(record) == []
    admin.close()


@pytest.mark.parametrize("taken", [True, False])
def test_a_lease_that_ran_out_is_told_to_its_holder(
    redis_server: RedisServer, tmp_path: Path, redis_namespace: str, taken: bool
) -> None:
    backend = RedisBackend.from_url(
        redis_server.url, namespace=redis_namespace, cachedir=tmp_path
    )
    backend._lease_seconds = 0.6
    admin = redis_server.client()
    name = backend._lock_key("k")
    with recorded() as record:
        with backend.lock("k"):
            # As if the lease had run out (and, maybe, another process took it).
            if taken:
                admin.set(name, "another-holder")
            else:
                admin.delete(name)
            time.sleep(0.6)
            if not taken:
                # Renewal took it back: nobody else can take it now.
                assert admin.get(name) is not None
        # Another's lock is never released by us.
        assert admin.get(name) == (b"another-holder" if taken else None)
    messages = cache_messages(record)
    assert len(messages) == 1, messages
    expected = "another process holds it now" if taken else "was taken back"
    assert expected in messages[0]
    assert "may have been done twice" in messages[0]
    admin.delete(name)
    admin.close()


FACTORY = """
import os, sys, time
from pathlib import Path
from pytest_crosscache import Cache, RedisBackend

url, namespace, cachedir, log, hold = sys.argv[1:6]
backend = RedisBackend.from_url(url, namespace=namespace, cachedir=Path(cachedir))
backend._lease_seconds = 3.0
cache = Cache(Path(cachedir), backend)

def factory():
    with open(log, "a") as f:
        f.write(f"start {os.getpid()}\\n")
    print("computing", flush=True)
    time.sleep(float(hold))
    with open(log, "a") as f:
        f.write(f"end {os.getpid()}\\n")
    return 42

print(cache.get_or_set("expensive", factory), flush=True)
"""


def test_get_or_set_runs_once_across_a_paused_server(
    own_redis_server: RedisServer, tmp_path: Path, redis_namespace: str
) -> None:
    server = own_redis_server
    url = f"{server.url}?socket_timeout=0.2"
    log = tmp_path / "factory.log"

    def start(machine: str, hold: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                FACTORY,
                url,
                redis_namespace,
                str(tmp_path / machine),
                str(log),
                str(hold),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start("a", 5.0)
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "computing"
    # Its renewal (after 1 s, 0.2 s to answer) fails while the server is
    # stopped ...
    paused_for(server, 1.6)
    # ... and a second machine asks for the value while it still computes.
    second = start("b", 0.0)
    out_first, err_first = first.communicate(timeout=60)
    out_second, err_second = second.communicate(timeout=60)
    assert out_first.strip() == "42"
    assert out_second.strip() == "42"
    assert log.read_text().splitlines() == [f"start {first.pid}", f"end {first.pid}"]
    assert "may have been done twice" not in err_first + err_second
