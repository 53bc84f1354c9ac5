"""The default backend: JSON files under ``<cache_dir>/v``, pytest's own layout."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_crosscache._warnings import warn_cache
from pytest_crosscache.backends.protocol import Updater
from pytest_crosscache.fs.atomic import atomic_write
from pytest_crosscache.fs.atomic import is_temporary
from pytest_crosscache.fs.cachedir import STAGING_SUFFIX
from pytest_crosscache.fs.cachedir import ensure_cache_dir
from pytest_crosscache.fs.paths import UnsafePathError
from pytest_crosscache.fs.paths import confined
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

#: How values are opened: never waiting on a FIFO planted as a value.
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
#: What ``open`` with ``O_NOFOLLOW`` answers for a link (ELOOP; EMLINK on
#: the BSDs).
_IS_A_LINK = (errno.ELOOP, errno.EMLINK)

#: Lock files are named after their key's digest, with this suffix.
LOCK_SUFFIX = ".lock"

#: Tidying removes lock files nobody holds and nobody took for this long:
#: one file per key ever locked would otherwise pile up forever.
LOCK_IDLE_AFTER = 3600.0


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

    def path(self, key: str, *, follow: bool = True) -> Path:
        """The file of ``key``, checked to stay inside the cache directory.

        :raises UnsafePathError: if ``key`` is not a plain relative name or
            a symbolic link below the cache directory leads out of it.
        """
        return confined(self.root, key, under=VALUES_DIR, follow=follow)

    def _checked(self, key: str, *, follow: bool = True) -> Path | None:
        """:meth:`path`, or ``None`` after a warning naming the key."""
        try:
            return self.path(key, follow=follow)
        except UnsafePathError as exc:
            warn_cache(f"skipping cache key {key!r}: {exc}")
            return None

    def read(self, key: str) -> bytes | None:
        # The directories on the way are checked here; the value's own name
        # is opened without following it, and only a link (rare) pays for
        # resolving it.
        path = self._checked(key, follow=False)
        if path is None:
            return None
        try:
            fd = os.open(path, _READ_FLAGS | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno not in _IS_A_LINK:
                # Missing, unreadable, a name too long: no usable value.
                return None
            path = self._checked(key)
            if path is None:
                return None
            try:
                fd = os.open(path, _READ_FLAGS)
            except OSError:
                return None
        except ValueError:
            return None  # a name no file can have
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                if not stat.S_ISDIR(info.st_mode):
                    warn_cache(
                        f"skipping cache key {key!r}: {path} is not a regular file"
                    )
                return None
            return _read_all(fd, info.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)

    def modified(self, key: str) -> float | None:
        path = self._checked(key, follow=False)
        if path is None:
            return None
        try:
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                path = self._checked(key)
                if path is None:
                    return None
                info = os.stat(path)
        except (OSError, ValueError):
            return None
        return info.st_mtime

    def write(self, key: str, data: bytes) -> None:
        try:
            # The final name is replaced, never followed.
            path = self.path(key, follow=False)
        except UnsafePathError as exc:
            raise CachePathError(
                f"refusing to write cache key {key!r}: {exc}"
            ) from None
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
        # Unlinking removes the entry itself, never what a link points to;
        # the directories on the way are still checked.
        path = self._checked(key, follow=False)
        if path is None:
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """The stored keys matching ``pattern``; unsafe entries are skipped with
        a warning.

        :raises UnsafePathError: if ``pattern`` is not a usable glob.
        """
        if not self.values_dir.is_dir():
            from pytest_crosscache.fs.paths import check_glob

            check_glob(pattern)
            return
        for key in files_below(self.root, VALUES_DIR, pattern):
            if not is_temporary(key.rsplit("/", 1)[-1]):
                yield key

    @contextmanager
    def lock(self, key: str, timeout: float | None = None) -> Iterator[None]:
        # Imported here: only sessions that write pay for them.
        import hashlib

        from pytest_crosscache.fs.lock import FileLock

        # Messages name the value the lock guards: its lock file is an
        # implementation detail nobody needs to look at.
        value = self.values_dir / key
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:20]
        try:
            lock_path = confined(
                self.root, digest + LOCK_SUFFIX, under=LOCKS_DIR, follow=False
            )
        except UnsafePathError as exc:
            raise CachePathError(f"refusing to lock cache key {key!r}: {exc}") from None
        try:
            ensure_cache_dir(self.root)
            lock_path.parent.mkdir(exist_ok=True)
        except OSError as exc:
            raise CachePathError(
                f"could not create cache path {value}: {_os_error_text(exc, self.root)}"
            ) from exc
        wait = self.lock_timeout if timeout is None else timeout
        lock = FileLock(lock_path, timeout=wait)
        try:
            lock.acquire()
        except TimeoutError as exc:
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
            self.remove_idle_locks(older_than=LOCK_IDLE_AFTER)
            marker.parent.mkdir(exist_ok=True)
            marker.touch()

    def remove_abandoned(self, older_than: float) -> int:
        """Delete temporary files and trash of killed processes; return how many.

        Temporary files are looked for everywhere below the cache directory
        (``v/``, ``d/`` where merges stage copies, the Redis journal's
        directory), without following links.
        """
        deadline = time.time() - older_than
        removed = 0
        leftovers = [
            *self.root.glob(f".*{TRASH_SUFFIX}"),
            *self.root.parent.glob(f".{self.root.name}.*{STAGING_SUFFIX}"),
        ]
        if self.root.is_dir():
            leftovers.extend(
                Path(top, name)
                for top, _, files in os.walk(self.root)
                for name in files
                if is_temporary(name)
            )
        for path in leftovers:
            try:
                if path.lstat().st_mtime > deadline:
                    continue
                remove_tree(path)
            except OSError:
                continue
            removed += 1
        return removed

    def remove_idle_locks(self, older_than: float) -> int:
        """Delete the lock files nobody holds and nobody took for ``older_than``
        seconds; return how many.

        Safe while other processes take or wait for these locks (see
        :mod:`pytest_crosscache.fs.lock`).
        """
        from pytest_crosscache.fs.lock import remove_if_idle

        locks = self.root / LOCKS_DIR
        try:
            if not stat.S_ISDIR(os.lstat(locks).st_mode):
                return 0
            names = os.listdir(locks)
        except OSError:
            return 0
        unused_since = time.time() - older_than
        return sum(
            remove_if_idle(locks / name, unused_since)
            for name in names
            if name.endswith(LOCK_SUFFIX)
        )

    def clear(self) -> None:
        values = self.values_dir
        if os.path.lexists(values):
            # Move the tree aside first so that concurrent readers see either
            # the old values or none, then delete it at leisure.
            trash = self.root / f".{VALUES_DIR}.{os.urandom(6).hex()}{TRASH_SUFFIX}"
            try:
                values.rename(trash)
            except FileNotFoundError:
                pass
            else:
                with contextlib.suppress(OSError):
                    remove_tree(trash)
        # Lock files of values that are gone: those nobody holds go too.
        self.remove_idle_locks(older_than=0)


def _read_all(fd: int, size: int) -> bytes:
    """Everything the regular file ``fd`` holds: one ``read`` of the size
    ``fstat`` gave, usually."""
    # One byte more than expected tells a file that grew meanwhile; a short
    # read of a regular file is its end (Linux caps one read near 2 GiB).
    first = os.read(fd, size + 1)
    if len(first) <= size and len(first) < _LARGEST_READ:
        return first
    chunks = [first]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


#: The most bytes one ``read`` returns on Linux.
_LARGEST_READ = 0x7FFFF000


def remove_tree(path: Path) -> None:
    """Remove ``path``: a directory with all it holds, or a file or link.

    Links are removed, never followed, so a link planted in the cache
    directory cannot make a clear delete anything elsewhere.
    """
    if stat.S_ISDIR(os.lstat(path).st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
