"""Leftovers stay bounded: lock files, temporaries, trash.

Lock files are removed when nobody holds them, safely while others take
and wait for the same locks (a waiter on a removed file notices and locks
the new one); tidying and ``--cache-clear`` remove what they should and
nothing else.  Exclusion is checked with real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_crosscache import Cache
from pytest_crosscache import DirectoryBackend
from pytest_crosscache.backends.directory import LOCKS_DIR
from pytest_crosscache.backends.directory import TIDY_MARKER
from pytest_crosscache.fs.atomic import TEMP_SUFFIX
from pytest_crosscache.fs.lock import FileLock
from pytest_crosscache.fs.lock import remove_if_idle


def age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when), follow_symlinks=False)


def lock_files(cachedir: Path) -> list[Path]:
    return sorted((cachedir / LOCKS_DIR).glob("*.lock"))


def test_idle_lock_files_are_removed_held_ones_stay(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path / "c")
    for i in range(40):
        backend.update(f"app/{i}", lambda _: b"1")
    files = lock_files(backend.root)
    assert len(files) == 40
    for path in files:
        age(path, 7200)
    with backend.lock("app/7"):
        # Taking a lock marks its file as used now; make it look old anyway.
        held = [
            p
            for p in lock_files(backend.root)
            if os.stat(p).st_mtime > time.time() - 60
        ]
        assert len(held) == 1
        age(held[0], 7200)
        assert backend.remove_idle_locks(older_than=3600) == 39
        assert lock_files(backend.root) == held
    # Released, it goes too; recent ones stay: they are likely to be taken
    # again soon.
    assert backend.remove_idle_locks(older_than=3600) == 1
    backend.update("app/new", lambda _: b"2")
    assert backend.remove_idle_locks(older_than=3600) == 0
    assert len(lock_files(backend.root)) == 1


def test_planted_links_in_locks_dir(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path / "c")
    backend.update("app/x", lambda _: b"1")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    planted = backend.root / LOCKS_DIR / ("0" * 20 + ".lock")
    planted.symlink_to(victim)
    age(planted, 7200)
    assert backend.remove_idle_locks(older_than=3600) == 1
    assert not os.path.lexists(planted)
    assert victim.read_text() == "keep"


def test_lock_path_that_is_a_link_is_refused(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path / "c")
    backend.update("app/x", lambda _: b"1")
    (path,) = lock_files(backend.root)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    old = time.time() - 7200
    os.utime(victim, (old, old))
    path.unlink()
    path.symlink_to(victim)
    with pytest.raises(OSError, match="could not lock"):
        backend.update("app/x", lambda _: b"2")
    assert victim.stat().st_mtime == pytest.approx(old)
    assert victim.read_text() == "keep"


def test_waiter_on_a_removed_lock_file_locks_the_new_one(tmp_path: Path) -> None:
    """The race: a lock file is unlinked while someone waits on it."""
    path = tmp_path / "k.lock"
    holder = FileLock(path, timeout=1)
    holder.acquire()
    acquired = threading.Event()
    release_waiter = threading.Event()

    def wait() -> None:
        with FileLock(path, timeout=30):
            acquired.set()
            release_waiter.wait(30)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)  # the waiter has opened the file and polls it
    os.unlink(path)  # as a tidy would, were nobody holding it
    newcomer = FileLock(path, timeout=1)
    newcomer.acquire()  # a fresh file: free at once
    holder.release()  # the waiter gets the old inode, sees it is gone
    time.sleep(0.2)
    assert not acquired.is_set(), "two holders of one lock"
    newcomer.release()
    assert acquired.wait(30)
    release_waiter.set()
    waiter.join(30)


def test_remove_if_idle_never_removes_a_held_lock(tmp_path: Path) -> None:
    path = tmp_path / "k.lock"
    with FileLock(path, timeout=1):
        age(path, 7200)
        assert remove_if_idle(path, time.time()) is False
        assert path.exists()
    assert remove_if_idle(path, time.time()) is True
    assert not path.exists()
    assert remove_if_idle(path, time.time()) is False


COUNTER = """
import sys, time
from pathlib import Path
from pytest_crosscache.fs.lock import FileLock

lock_path, counter, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for _ in range(rounds):
    with FileLock(lock_path, timeout=60):
        value = int(counter.read_text())
        time.sleep(0.0005)
        counter.write_text(str(value + 1))
"""

TIDIER = """
import sys, time
from pathlib import Path
from pytest_crosscache.fs.lock import remove_if_idle

lock_path, stop = Path(sys.argv[1]), Path(sys.argv[2])
removed = 0
while not stop.exists():
    removed += remove_if_idle(lock_path, time.time() + 3600)
print(removed)
"""


def test_counting_under_a_lock_that_is_removed_all_the_time(tmp_path: Path) -> None:
    """Real processes increment a counter under the lock while another one
    removes the lock file whenever nobody holds it: no update is lost."""
    lock_path = tmp_path / "counter.lock"
    counter = tmp_path / "counter"
    counter.write_text("0")
    stop = tmp_path / "stop"
    tidier = subprocess.Popen(
        [sys.executable, "-c", TIDIER, str(lock_path), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", COUNTER, str(lock_path), str(counter), "60"]
        )
        for _ in range(4)
    ]
    try:
        for worker in workers:
            assert worker.wait(120) == 0
    finally:
        stop.touch()
        out, _ = tidier.communicate(timeout=60)
    assert int(counter.read_text()) == 4 * 60
    assert int(out) > 0, "the tidier never removed the lock file: no race tried"


def test_sessions_tidy_old_lock_files(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_uses(cache):
            for i in range(20):
                cache.update(f"app/{i}", lambda v: (v or 0) + 1, 0)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    cachedir = pytester.path / ".pytest_cache"
    files = lock_files(cachedir)
    assert len(files) >= 20
    for path in files:
        age(path, 2 * 86400)
    age(cachedir / LOCKS_DIR / TIDY_MARKER, 2 * 86400)
    pytester.makepyfile("def test_ok(): pass")
    pytester.runpytest().assert_outcomes(passed=1)
    # Only the locks this session took (its records) are left.
    remaining = lock_files(cachedir)
    assert len(remaining) <= 3
    assert all(os.stat(p).st_mtime > time.time() - 600 for p in remaining)


def test_cache_clear_removes_values_dirs_locks_and_temporaries(
    pytester: pytest.Pytester,
) -> None:
    cachedir = pytester.path / ".pytest_cache"
    cache = Cache(cachedir)
    for i in range(5):
        cache.update(f"app/{i}", lambda v: 1, 0)
    (cache.mkdir("plugin") / f".x{TEMP_SUFFIX}").write_text("half")
    (cachedir / "v" / "app" / f".y{TEMP_SUFFIX}").write_text("half")
    victim = pytester.path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    (cachedir / "v" / "app" / "link").symlink_to(victim)
    pytester.makepyfile("def test_ok(): pass")
    pytester.runpytest("--cache-clear").assert_outcomes(passed=1)
    assert not (cachedir / "d").exists()
    assert sorted(p.name for p in cachedir.iterdir()) == sorted(
        [".gitignore", "CACHEDIR.TAG", "README.md", LOCKS_DIR, "v"]
    )
    assert list((cachedir / "v").rglob(f"*{TEMP_SUFFIX}")) == []
    # The values' locks went with them; the session then took its records'.
    assert len(lock_files(cachedir)) <= 3
    assert (victim / "keep").read_text() == "keep"
    assert not list(cachedir.glob("*trash*"))
