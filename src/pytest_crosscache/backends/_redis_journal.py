"""The Redis backend's outage journal, and the three-way merge that replays it.

While Redis is unreachable, a session keeps its values in the local cache
directory and notes here each key it changes, with the value the key had
before (the merge base) and when it changed.  The next session that
reaches Redis merges each noted key's local value into what the server
holds now (:func:`merge3`), so nothing recorded during the outage is lost
and nothing recorded elsewhere meanwhile is overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Where the journals live, inside ``cache_dir`` but outside ``v/``.
JOURNAL_DIR = ".crosscache-redis"

#: A journal larger than this is not read: it holds one short entry per key.
MAX_JOURNAL_BYTES = 64 << 20

#: Replays one noted key: (key, value before the outage, local write time).
Replay = Callable[[str, bytes | None, float | None], None]


class UnreplayableEntry(Exception):
    """Raised by a :data:`Replay` for an entry that can never be replayed.

    The entry is dropped with a warning naming it (the key's local value
    stays where it is); the replay goes on with the next one.
    """


class OutageJournal:
    """The keys changed during outages of one Redis server and namespace.

    ``report`` receives the warnings of a replay (entries dropped, a
    journal that cannot be read); it must not raise.
    """

    def __init__(
        self,
        cache_root: Path,
        identity: str,
        lock_timeout: float,
        report: Callable[[str], None] | None = None,
    ) -> None:
        import hashlib

        digest = hashlib.sha1(identity.encode()).hexdigest()[:16]
        self.cache_root = cache_root
        self.path = cache_root / JOURNAL_DIR / f"journal-{digest}.json"
        self.lock_timeout = lock_timeout
        self.report = report

    def _warn(self, message: str) -> None:
        if self.report is not None:
            self.report(message)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        from pytest_crosscache.backends.directory import CachePathError
        from pytest_crosscache.fs.cachedir import ensure_cache_dir
        from pytest_crosscache.fs.lock import FileLock
        from pytest_crosscache.fs.paths import UnsafePathError
        from pytest_crosscache.fs.paths import confined

        try:
            # The journal's directory may have been planted as a link.
            confined(self.cache_root, self.path.name, under=JOURNAL_DIR, follow=False)
        except UnsafePathError as exc:
            raise CachePathError(f"refusing the Redis outage journal: {exc}") from None
        ensure_cache_dir(self.cache_root)
        self.path.parent.mkdir(exist_ok=True)
        lock = FileLock(self.path.with_suffix(".lock"), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except TimeoutError as exc:
            raise TimeoutError(
                f"gave up after {self.lock_timeout:g}s waiting for the lock on "
                f"the Redis outage journal {self.path}"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def note(self, key: str, before: Callable[[], bytes | None]) -> None:
        """Note that ``key`` changes now; ``before()`` gives its first base."""
        with self._locked():
            entries = self._load()
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = {"base": _text(before())}
            entry["time"] = time.time()
            self._save(entries)

    def replay(self, apply: Replay) -> None:
        """Hand every noted key to ``apply``; forget each one ``apply`` returns from.

        A key whose ``apply`` raises stays in the journal, as do the keys
        after it, for the next session to try again -- unless it raises
        :class:`UnreplayableEntry`, or the key is no valid key at all: such
        an entry is dropped with a warning naming it.  A journal that
        cannot be read or locked is kept, with a warning, and never fails
        the session.
        """
        from pytest_crosscache._keys import normalize_key
        from pytest_crosscache.fs.paths import relative_parts

        if not os.path.lexists(self.path):
            return
        try:
            with self._locked():
                entries = self._load()
                try:
                    for key in list(entries):
                        entry = entries[key]
                        written = entry.get("time")
                        try:
                            relative_parts(key, what="journal key")
                            normalize_key(key)
                            apply(
                                key,
                                _bytes(entry.get("base")),
                                written if isinstance(written, (int, float)) else None,
                            )
                        except (UnreplayableEntry, ValueError) as exc:
                            self._warn(
                                f"dropped the Redis outage journal's entry for "
                                f"{key!r} ({self.path}): {exc}; what this machine "
                                f"stored under it stays in {self.cache_root}"
                            )
                        del entries[key]
                finally:
                    if entries:
                        self._save(entries)
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            self.path.unlink()
        except OSError as exc:
            self._warn(
                f"could not replay the Redis outage journal {self.path} ({exc}); "
                "it is kept for the next session"
            )

    def discard(self) -> None:
        """Forget every noted key (the cache was cleared)."""
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _load(self) -> dict[str, dict[str, Any]]:
        from pytest_crosscache.fs.foreign import ForeignFileError
        from pytest_crosscache.fs.foreign import read_regular

        try:
            data = json.loads(read_regular(self.path, MAX_JOURNAL_BYTES))
        except FileNotFoundError:
            return {}
        except (ForeignFileError, ValueError, RecursionError) as exc:
            self._warn(f"ignoring the damaged Redis outage journal {self.path}: {exc}")
            return {}
        if not isinstance(data, dict):
            self._warn(f"ignoring the damaged Redis outage journal {self.path}")
            return {}
        odd = [k for k, v in data.items() if not isinstance(v, dict)]
        if odd:
            self._warn(
                f"dropped damaged entries of the Redis outage journal {self.path}: "
                + ", ".join(repr(k) for k in odd[:5])
            )
        return {k: v for k, v in data.items() if isinstance(v, dict)}

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        from pytest_crosscache.fs.atomic import atomic_write

        atomic_write(self.path, json.dumps(entries, indent=1).encode())


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _bytes(text: object) -> bytes | None:
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else None


def merge3(
    base: bytes | None,
    ours: bytes | None,
    theirs: bytes | None,
    *,
    ours_newer: bool = True,
) -> Any:
    """The JSON value that combines our change (base -> ours) with theirs.

    Mappings merge key by key and lists of strings element by element:
    what we added or changed is applied to theirs, what we removed is
    removed from it.  Other values (and a deletion on our side that they
    did not change meanwhile) resolve to the newer side.  Returns ``None``
    for "absent".
    """
    if ours in (theirs, base):
        return _decode(theirs)
    if theirs == base:
        return _decode(ours)
    decoded = [_decode(data) for data in (base, ours, theirs)]
    old, mine, other = decoded
    if mine is not None and other is not None:
        if isinstance(mine, dict) and isinstance(other, dict):
            return _merge_dicts(old if isinstance(old, dict) else {}, mine, other)
        if _strings(mine) and _strings(other):
            return _merge_lists(old if _strings(old) else [], mine, other)
    return mine if ours_newer else other


def _decode(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _merge_dicts(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
) -> dict[str, Any]:
    merged = dict(theirs)
    for name, value in ours.items():
        if name not in base or base[name] != value:
            merged[name] = value
    for name in base:
        if name not in ours:
            merged.pop(name, None)
    return merged


def _merge_lists(base: list[str], ours: list[str], theirs: list[str]) -> list[str]:
    removed = set(base) - set(ours)
    merged = [item for item in theirs if item not in removed]
    present = set(merged)
    merged.extend(item for item in ours if item not in present and item not in base)
    if ours == sorted(ours) and theirs == sorted(theirs):
        merged.sort()
    return merged
