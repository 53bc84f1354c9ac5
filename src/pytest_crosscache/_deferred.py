"""Record updates that could not wait for a stuck lock, kept for the next session.

When the lock of ``cache/lastfailed``, ``cache/nodeids`` or
``cache/stepwise`` is not free within ``cache_lock_timeout`` (its holder
hangs, was stopped with ``SIGSTOP``, or waits on a dead network file
system), a session must neither lose what it saw nor write without the
lock: the holder, once it resumes, would overwrite that write, or the
write would overwrite the holder's.  Instead the session saves its update
in a file of its own, below ``<cache_dir>/.crosscache-deferred/``: the
value it read (the base) and the value it would have written (ours).

Every session that reads the record folds these files in, oldest first,
with the three-way merge the Redis outage journal uses (our change from
base to ours applied to what is stored), so ``--lf`` sees the failures at
once.  The next session that updates the record takes its lock, writes the
folded value and only then, still holding the lock, deletes the files.

Chosen over a final unlocked write, which would race with the holder, and
over merging into the record later from memory, which a killed session
cannot do.  Nothing here raises for a damaged or foreign file: it is
skipped, and removed once the record is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any
from typing import final

from pytest_crosscache._keys import LASTFAILED_KEY
from pytest_crosscache._keys import NODEIDS_KEY
from pytest_crosscache._keys import STEPWISE_KEY

#: Inside ``cache_dir``, outside ``v/``: pytest's layout stays as it is.
DEFERRED_DIR = ".crosscache-deferred"

#: The records whose updates are deferred rather than dropped: their values
#: merge field by field (mappings) or item by item (lists of strings).
DEFERRABLE = frozenset({LASTFAILED_KEY, NODEIDS_KEY, STEPWISE_KEY})

#: A deferred file larger than this is not read (a record of a million node
#: ids is about 60 MB): a foreign file must not exhaust memory.
MAX_BYTES = 256 << 20

_SUFFIX = ".json"


@final
class Deferred:
    """The deferred updates of one record key in one cache directory."""

    __slots__ = ("directory", "key")

    def __init__(self, cachedir: Path, key: str) -> None:
        import hashlib

        self.key = key
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
        self.directory = cachedir / DEFERRED_DIR / digest[:20]

    def save(self, base: bytes | None, ours: bytes) -> Path:
        """Keep an update: ``ours`` was computed from ``base``.  Returns its file."""
        from pytest_crosscache.fs.atomic import atomic_write

        entry = {
            "key": self.key,
            "time": time.time(),
            "base": _text(base),
            "ours": _text(ours),
        }
        self._check()
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(4).hex()}{_SUFFIX}"
        path = self.directory / name
        atomic_write(path, json.dumps(entry).encode())
        return path

    def _check(self) -> None:
        """Refuse a directory planted as a link out of the cache directory.

        :raises OSError: naming the link.
        """
        from pytest_crosscache.backends.directory import CachePathError
        from pytest_crosscache.fs.paths import UnsafePathError
        from pytest_crosscache.fs.paths import confined

        try:
            confined(self.directory.parents[1], self.directory.name, under=DEFERRED_DIR)
        except UnsafePathError as exc:
            raise CachePathError(
                f"refusing deferred updates of {self.key!r}: {exc}"
            ) from None

    def files(self) -> list[Path]:
        """The deferred files, oldest first; cheap when there are none."""
        if not os.path.lexists(self.directory.parent):
            return []
        try:
            self._check()
        except OSError as exc:
            from pytest_crosscache._warnings import warn_cache

            warn_cache(str(exc))
            return []
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(self.directory)
                if entry.name.endswith(_SUFFIX) and not entry.name.startswith(".")
            )
        except OSError:
            return []
        return [self.directory / name for name in names]

    def fold(self, data: bytes | None, files: list[Path]) -> bytes | None:
        """``data`` with the updates of ``files`` applied, oldest first."""
        if not files:
            return data
        from pytest_crosscache import _json
        from pytest_crosscache.backends._redis_journal import merge3

        folded = data
        for path in files:
            entry = _load(path, self.key)
            if entry is None:
                continue
            base, ours = entry
            merged = merge3(base, ours, folded)
            try:
                folded = None if merged is None else _json.encode(self.key, merged)
            except (TypeError, ValueError):
                continue
        return folded

    def discard(self, files: list[Path]) -> None:
        """Delete ``files`` (their updates are in the record now)."""
        for path in files:
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()


def clear(cachedir: Path) -> None:
    """Forget every deferred update (``--cache-clear``)."""
    from pytest_crosscache.backends.directory import remove_tree

    # A link planted there goes, never what it points to.
    with contextlib.suppress(OSError):
        remove_tree(cachedir / DEFERRED_DIR)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _read_regular(path: Path) -> bytes | None:
    """The bytes of a regular file, never following a link or opening a FIFO."""
    import stat

    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _load(path: Path, key: str) -> tuple[bytes | None, bytes | None] | None:
    """(base, ours) of a deferred file, or ``None`` if it is not one of ours."""
    data = _read_regular(path)
    if data is None:
        return None
    try:
        entry: Any = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    base, ours = entry.get("base"), entry.get("ours")
    if not isinstance(ours, str) or not (base is None or isinstance(base, str)):
        return None
    # Undecodable values would read as "absent" in the merge: the record
    # would be deleted.  Such a file was not written by us.
    for text in (base, ours):
        if text is not None:
            try:
                json.loads(text)
            except (ValueError, RecursionError):
                return None
    return _bytes(base), _bytes(ours)


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogateescape")
