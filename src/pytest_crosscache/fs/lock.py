"""Cross-process ``flock`` locks on files that may be removed while others wait.

A lock file per key would pile up forever if nobody removed them; removing
one is only safe with care.  ``flock`` locks an inode, not a name: a process
waiting on a lock file that is unlinked meanwhile would, once it gets the
lock, hold a lock on an inode nobody else can reach, while a newcomer
creates a fresh file under the same name and locks that one.  Two holders.

So every holder checks, after ``flock`` succeeds, that its descriptor is
still the file at the lock's path (same device and inode) and starts over
if not; and :func:`remove_if_idle` only unlinks a lock file while holding
its lock itself.  Whoever waited on the removed inode then notices and
locks the new file, which keeps exactly one holder at a time.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from pathlib import Path
from types import TracebackType

#: flock answers these when another process holds the lock.
_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)

_OPEN_FLAGS = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class FileLock:
    """An exclusive lock on ``path``, waited for at most ``timeout`` seconds.

    Not re-entrant: two ``FileLock`` objects on one path exclude each other,
    even in one process (threads included).
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; :class:`TimeoutError` once ``timeout`` has passed."""
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        fd = self._open()
        try:
            while True:
                if _try_lock(fd):
                    if _is_at(fd, self.path):
                        break
                    # Removed (or replaced) while we waited: that inode
                    # guards nothing any more; lock whatever is there now.
                    os.close(fd)
                    fd = -1
                    fd = self._open()
                    continue
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"lock {self.path} is held by another process")
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        # The lock file's time says when it was last used, for tidying.
        with contextlib.suppress(OSError):
            os.utime(fd)
        self._fd = fd

    def _open(self) -> int:
        return os.open(self.path, _OPEN_FLAGS | os.O_CREAT, 0o666)

    def release(self) -> None:
        """Let go of the lock (closing the file releases the ``flock``)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def remove_if_idle(path: Path, unused_since: float) -> bool:
    """Remove the lock file ``path`` if nobody holds it and it was last used
    before ``unused_since`` (seconds since the epoch); return whether it went.

    Anything at ``path`` that is not a regular file (a planted link) is
    removed too: no lock of ours lives there.
    """
    try:
        info = os.lstat(path)
    except OSError:
        return False
    if info.st_mtime > unused_since:
        return False
    if not stat.S_ISREG(info.st_mode):
        try:
            os.unlink(path)
        except OSError:
            return False
        return True
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return False
    try:
        # Unlinked only while we hold it, and only if it is still the file
        # at that name: see the module docstring for why that is safe.
        if not _try_lock(fd) or not _is_at(fd, path):
            return False
        os.unlink(path)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is (still) the file named ``path``."""
    held = os.fstat(fd)
    try:
        current = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)
