"""The default backend: JSON files under ``<cache_dir>/v``, pytest's own layout."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_crosscache.backends.protocol import Updater
from pytest_crosscache.fs.atomic import atomic_write
from pytest_crosscache.fs.atomic import is_temporary
from pytest_crosscache.fs.cachedir import STAGING_SUFFIX
from pytest_crosscache.fs.cachedir import ensure_cache_dir
from pytest_crosscache.fs.paths import files_below

VALUES_DIR = "v"

#: Lock files live next to, never inside, ``v/``: the values tree keeps
#: exactly the layout pytest's builtin provider reads.
LOCKS_DIR = ".locks"

#: How long a read-modify-write waits for another process before giving up.
DEFAULT_LOCK_TIMEOUT = 30.0

#: A temporary file this old belongs to a writer that died: no live write
#: takes anywhere near this long.
ABANDONED_AFTER = 600.0

#: Looking for abandoned files walks ``v/``; doing it at most this often
#: keeps the per-session cost to one ``stat``.
TIDY_INTERVAL = 3600.0
TIDY_MARKER = "tidied"

#: Suffix of a values tree moved aside by ``clear`` before deletion.
TRASH_SUFFIX = ".crosscache-trash"


class CachePathError(OSError):
    """A cache path could not be created or written; the message names it."""


#: Errors of a first write attempt that may only mean the value's directory
#: does not exist yet (a name too long may be in the directory part).
_NO_PARENT = (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG)


def _os_error_text(exc: OSError, path: Path) -> str:
    """``exc`` as Python prints it, but naming ``path``.

    A failed atomic write names its temporary file, which the user never
    asked for; pytest's provider writes in place and names the value's path.
    """
    if exc.errno is None or exc.strerror is None:
        return str(exc)
    return f"[Errno {exc.errno}] {exc.strerror}: {str(path)!r}"


def _write_error(path: Path, exc: OSError) -> CachePathError:
    return CachePathError(
        f"cache could not write path {path}: {_os_error_text(exc, path)}"
    )


class DirectoryBackend:
    """Values as files ``<root>/v/<key>``: atomic writes, updates under file locks."""

    # A plain class rather than an attrs record: this module is imported at
    # pytest start-up, and importing attrs alone costs more than our budget.
    def __init__(self, root: Path, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return (
            f"DirectoryBackend(root={self.root!r}, lock_timeout={self.lock_timeout!r})"
        )

    @property
    def values_dir(self) -> Path:
        return self.root / VALUES_DIR

    def describe(self) -> str:
        return str(self.root)

    def location(self, key: str) -> str:
        return str(self.values_dir / key)

    def read(self, key: str) -> bytes | None:
        try:
            return (self.values_dir / key).read_bytes()
        except OSError:
            # Missing, a directory, unreadable: all mean "no usable value".
            return None

    def modified(self, key: str) -> float | None:
        try:
            return (self.values_dir / key).stat().st_mtime
        except OSError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = self.values_dir / key
        # Optimistic: the directories usually exist, so try the write first
        # and only create them (and the cache directory) when it says they
        # do not.  That also recreates a cache directory that a parallel
        # ``--cache-clear`` or ``rm -rf`` removed during the session.
        try:
            atomic_write(path, data)
            return
        except OSError as exc:
            if exc.errno not in _NO_PARENT:
                raise _write_error(path, exc) from exc
        # The same two steps, and so the same messages, as pytest's provider:
        # create the directory holding the value, then write the value.
        try:
            ensure_cache_dir(self.root)
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CachePathError(f"could not create cache path {path}: {exc}") from exc
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise _write_error(path, exc) from exc

    def delete(self, key: str) -> bool:
        try:
            (self.values_dir / key).unlink()
        except FileNotFoundError:
            return False
        return True

    def keys(self, pattern: str = "*") -> Iterator[str]:
        base = self.values_dir
        if not base.is_dir():
            return
        for path in files_below(base, pattern):
            if not is_temporary(path.name):
                yield Path(os.path.normpath(path)).relative_to(base).as_posix()

    @contextmanager
    def lock(self, key: str, timeout: float | None = None) -> Iterator[None]:
        # Imported here: only sessions that write pay for them.
        import hashlib

        import filelock

        # Messages name the value the lock guards: its lock file is an
        # implementation detail nobody needs to look at.
        value = self.values_dir / key
        locks = self.root / LOCKS_DIR
        try:
            ensure_cache_dir(self.root)
            locks.mkdir(exist_ok=True)
        except OSError as exc:
            raise CachePathError(
                f"could not create cache path {value}: {_os_error_text(exc, self.root)}"
            ) from exc
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]
        wait = self.lock_timeout if timeout is None else timeout
        lock = filelock.FileLock(locks / f"{digest}.lock", timeout=wait)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise TimeoutError(
                f"gave up after {wait:g}s waiting for the lock on cache "
                f"key {key!r} ({value}); another pytest process holds it"
            ) from exc
        except OSError as exc:
            raise CachePathError(
                f"could not lock cache path {value}: {_os_error_text(exc, self.root)}"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def update(self, key: str, updater: Updater) -> bytes | None:
        with self.lock(key):
            old = self.read(key)
            new = updater(old)
            if new is None or new == old:
                return old
            self.write(key, new)
            return new

    def tidy(self) -> None:
        marker = self.root / LOCKS_DIR / TIDY_MARKER
        now = time.time()
        try:
            if now - marker.stat().st_mtime < TIDY_INTERVAL:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        if not self.root.is_dir():
            # Nothing to tidy; and only ensure_cache_dir may create the
            # cache directory, as it adds the supporting files.
            return
        with contextlib.suppress(OSError):
            self.remove_abandoned(older_than=ABANDONED_AFTER)
            marker.parent.mkdir(exist_ok=True)
            marker.touch()

    def remove_abandoned(self, older_than: float) -> int:
        """Delete temporary files and trash of killed processes; return how many."""
        deadline = time.time() - older_than
        removed = 0
        leftovers = [
            *self.root.glob(f".*{TRASH_SUFFIX}"),
            *self.root.parent.glob(f".{self.root.name}.*{STAGING_SUFFIX}"),
        ]
        if self.values_dir.is_dir():
            leftovers.extend(
                Path(top, name)
                for top, _, files in os.walk(self.values_dir)
                for name in files
                if is_temporary(name)
            )
        for path in leftovers:
            try:
                if path.lstat().st_mtime > deadline:
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError:
                continue
            removed += 1
        return removed

    def clear(self) -> None:
        values = self.values_dir
        if not values.is_dir():
            return
        # Move the tree aside first so that concurrent readers see either
        # the old values or none, then delete it at leisure.
        trash = self.root / f".{VALUES_DIR}.{os.urandom(6).hex()}{TRASH_SUFFIX}"
        try:
            values.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)
