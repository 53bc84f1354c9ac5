"""The Redis backend: one cache shared by every machine that reaches the server.

Selected by ``--cache-backend=URL``, the ``PYTEST_CACHE_BACKEND``
environment variable or the ``cache_backend`` ini setting (see
:mod:`pytest_crosscache.backends.redis_hooks`).  redis-py is imported when
the backend first connects.

Two tiers:

* **Redis** is the truth while it is reachable: reads come from it, and
  every write, update and delete goes to it first.
* **The local** :class:`~pytest_crosscache.DirectoryBackend` on
  ``cache_dir`` gets a copy of every value this machine writes (so
  ``-p no:crosscache`` and a later outage see them) and holds everything
  while Redis is unreachable.  It is never read while Redis answers, so a
  stale local value cannot shadow a newer one on the server.

When Redis cannot be reached, at the start or in the middle of a session,
the session warns once and carries on with the local tier; each key it
writes meanwhile is noted in a journal next to the values, with the value
it was derived from.  The next session that reaches Redis replays the
journal with a three-way merge (:mod:`._redis_journal`), so nothing
recorded during the outage is lost and nothing recorded elsewhere meanwhile
is overwritten.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_crosscache._keys import HISTORY_PREFIX
from pytest_crosscache._keys import normalize_key
from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache.backends._redis_errors import describe
from pytest_crosscache.backends._redis_journal import OutageJournal
from pytest_crosscache.backends._redis_journal import UnreplayableEntry
from pytest_crosscache.backends._redis_journal import merge3
from pytest_crosscache.backends._redis_lock import LEASE_SECONDS
from pytest_crosscache.backends._redis_lock import Backoff
from pytest_crosscache.backends._redis_lock import Lease
from pytest_crosscache.backends._redis_lock import acquire
from pytest_crosscache.backends._redis_url import RedisURL
from pytest_crosscache.backends.directory import DEFAULT_LOCK_TIMEOUT
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.protocol import Updater
from pytest_crosscache.fs.paths import check_glob
from pytest_crosscache.fs.paths import relative_parts
from pytest_crosscache.fs.paths import rglob_match

if TYPE_CHECKING:
    import redis

#: A dead server must cost a session a couple of seconds, not a couple per key:
#: after the first failure the session stops asking it.
CONNECT_TIMEOUT = 2.0
OPERATION_TIMEOUT = 5.0

#: Records every session reads at its start: fetched in one round trip.
PREFETCH = ("cache/lastfailed", "cache/nodeids", "cache/stepwise")
#: A prefetched value answers one read, and only this soon after the fetch
#: (the records are read right after the backend connects) and before this
#: session writes the key.
PREFETCH_FRESH = 0.5

# Every value of the namespace and its index go in one atomic step.
_CLEAR = """
local names = redis.call('hkeys', KEYS[1])
for _, name in ipairs(names) do
  redis.call('del', ARGV[1] .. name)
end
redis.call('del', KEYS[1])
return #names
"""


class RedisBackend:
    """Values in Redis under one namespace, written through to a local directory.

    Implements :class:`~pytest_crosscache.Backend`.  Keys live under
    ``crosscache:{<namespace>}:``: ``v:<key>`` holds the value's bytes
    (exactly what the directory backend would write to ``v/<key>``),
    the hash ``meta`` maps each key to its write time and ``lock:<key>``
    is the key's lock.  See the module docstring for the local tier and
    outages.
    """

    def __init__(
        self,
        url: str | RedisURL,
        *,
        namespace: str,
        cachedir: Path,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        operation_timeout: float = OPERATION_TIMEOUT,
    ) -> None:
        self.url = url if isinstance(url, RedisURL) else RedisURL(url)
        if not namespace:
            raise ValueError("the Redis cache namespace must not be empty")
        self.namespace = namespace
        self.local = DirectoryBackend(Path(cachedir), lock_timeout)
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self.operation_timeout = operation_timeout
        from urllib.parse import quote

        # Quoting keeps ':' and braces out of the namespace, so no namespace
        # can reach into another's keys; the braces make it a cluster hash tag.
        prefix = f"crosscache:{{{quote(namespace, safe='')}}}:"
        self._value_prefix = prefix + "v:"
        self._meta = prefix + "meta"
        self._lock_prefix = prefix + "lock:"
        self._client: redis.Redis | None = None
        #: None: not tried yet; True: connected; False: given up for the session.
        self._online: bool | None = None
        #: False once the server refused a write (out of memory, a read-only
        #: replica, an ACL): reads still come from it, writes stay local.
        self._writable = True
        #: Keys written locally while the server refused writes: read locally.
        self._diverted: set[str] = set()
        #: A lock's lease: how long a holder that stops renewing keeps it.
        self._lease_seconds = LEASE_SECONDS
        self._state = threading.RLock()
        self._prefetched: dict[str, bytes | None] = {}
        self._prefetched_at = 0.0
        #: Called with the message when Redis fails, instead of issuing a
        #: :class:`pytest.PytestCacheWarning` (the plugin routes it to the
        #: session's warnings summary).
        self.on_outage: Callable[[str], None] | None = None
        #: What Redis last answered for each key: read during an outage, as
        #: it is newer than the local copy when the session saw it.
        self._seen: dict[str, bytes | None] = {}
        url = self.url
        self._outage_journal = OutageJournal(
            self.local.root,
            f"{url.scheme}|{url.address}|{url.db}|{namespace}",
            lock_timeout,
            report=self._report,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str,
        cachedir: Path,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> RedisBackend:
        """A backend for ``url`` outside a pytest session (scripts, the CLI).

        :raises ValueError: if the URL is not a usable ``redis://``,
            ``rediss://`` or ``unix://`` URL (an unknown query parameter, a
            TLS option without TLS, a password with unencoded ``/?#@``); the
            message shows the URL without its password.
        """
        return cls(
            RedisURL(url),
            namespace=namespace,
            cachedir=cachedir,
            lock_timeout=lock_timeout,
        )

    def __repr__(self) -> str:
        return (
            f"RedisBackend(url={self.url.redacted!r}, namespace={self.namespace!r}, "
            f"cachedir={self.local.root!r})"
        )

    # -- connection ---------------------------------------------------------

    def _connection(self) -> redis.Redis | None:
        """The client while Redis answers, ``None`` once it has failed."""
        online = self._online
        if online is None:
            with self._state:
                if self._online is None:
                    self._connect()
            online = self._online
        return self._client if online else None

    def _connect(self) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries and no client-info handshake (two round trips saved):
        # one bounded attempt.  Timeouts in the URL's query (?socket_timeout=10)
        # win over these.  The connection is built from the parse that was
        # checked and is shown, never from the URL's text.
        options: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.operation_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        try:
            import redis.driver_info  # redis-py 7.1 and later
        except ImportError:
            options.update(lib_name=None, lib_version=None)
        else:
            options.update(driver_info=None)
        options.update(self.url.connection_options())
        client = redis.Redis(**options)
        self._client = client
        self._online = True
        try:
            try:
                self._outage_journal.replay(
                    lambda key, base, written: self._replay(client, key, base, written)
                )
            except _redis_errors() as exc:
                # A server that refuses writes can still be read from; the
                # journal waits for a session that may write.
                self._fail(exc, writing=True)
                if not self._online:
                    return
            names = [self._value_key(key) for key in PREFETCH]
            values = client.mget(names)
        except _redis_errors() as exc:
            self._fail(exc)
            return
        self._prefetched = {
            key: _as_bytes(value) for key, value in zip(PREFETCH, values, strict=True)
        }
        self._prefetched_at = time.monotonic()
        self._seen.update(self._prefetched)

    def _fail(self, exc: BaseException, *, writing: bool = False) -> None:
        """Give up on Redis for the rest of the session, with one warning.

        A write the server refuses (``writing``, and a problem of kind
        ``refused``) only stops this session's writes: reads go on.
        """
        problem = describe(exc, self.url)
        where = f"cache backend Redis at {self.url.address}"
        if writing and problem.kind == "refused":
            with self._state:
                if not self._writable or not self._online:
                    return
                self._writable = False
            self._report(
                f"{where} {problem.text}; this session keeps what it writes in "
                f"{self.local.root} (reads still come from Redis) and the next "
                "session that may write sends it there"
            )
            return
        with self._state:
            if self._online is False:
                return
            self._online = False
            client, self._client = self._client, None
            self._prefetched.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        self._report(
            f"{where} {problem.text}; this session keeps its cache in "
            f"{self.local.root} and the next session that reaches Redis sends "
            "it there"
        )

    def _report(self, message: str) -> None:
        if self.on_outage is not None:
            self.on_outage(message)
            return
        with shown_not_raised():
            warn_cache(message)

    def _writer(self) -> redis.Redis | None:
        """The client while Redis answers and accepts writes."""
        client = self._connection()
        return client if self._writable else None

    # -- names --------------------------------------------------------------

    def _value_key(self, key: str) -> str:
        return self._value_prefix + key

    def _lock_key(self, key: str) -> str:
        return self._lock_prefix + key

    def describe(self) -> str:
        return f"{self.url.redacted} (namespace {self.namespace!r})"

    def location(self, key: str) -> str:
        return f"{self.url.redacted} key {self._value_key(key)!r}"

    # -- reads --------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        client = self._connection()
        if client is not None and key not in self._diverted:
            if key in self._prefetched:
                data = self._prefetched.pop(key)
                if time.monotonic() - self._prefetched_at <= PREFETCH_FRESH:
                    return data
            try:
                data = _as_bytes(client.get(self._value_key(key)))
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                self._seen[key] = data
                return data
        return self._offline_read(key)

    def _offline_read(self, key: str) -> bytes | None:
        if key in self._seen:
            return self._seen[key]
        return self.local.read(key)

    def modified(self, key: str) -> float | None:
        client = self._connection()
        if client is not None and key not in self._diverted:
            try:
                stamp = client.hget(self._meta, key)
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                return _parse_stamp(stamp)
        return self.local.modified(key)

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """The stored keys matching ``pattern``.

        Names in the namespace's index that are no valid key (``../x``,
        ``/etc/x``: anyone who can write to the namespace can add them) are
        skipped with a warning naming them, never turned into paths.

        :raises UnsafePathError: if ``pattern`` is not a usable glob.
        """
        check_glob(pattern)
        client = self._connection()
        if client is not None:
            try:
                names = client.hkeys(self._meta)
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                found = set()
                for raw in names:
                    key = _stored_key(raw)
                    if key is not None:
                        found.add(key)
                # Keys written locally while the server refused writes.
                found.update(self._diverted)
                for key in found:
                    if rglob_match(key, pattern):
                        yield key
                return
        yield from self.local.keys(pattern)

    # -- writes -------------------------------------------------------------

    def write(self, key: str, data: bytes) -> None:
        client = self._writer()
        self._prefetched.pop(key, None)
        if client is not None:
            try:
                with client.pipeline(transaction=True) as pipe:
                    pipe.set(self._value_key(key), data)
                    pipe.hset(self._meta, key, _stamp())
                    pipe.execute()
            except _redis_errors() as exc:
                self._fail(exc, writing=True)
            else:
                self._seen[key] = data
                self._write_through(key, data)
                return
        self._note_outage_write(key)
        self.local.write(key, data)

    def _write_through(self, key: str, data: bytes | None) -> None:
        # Best effort: Redis holds the value, the local copy is a convenience.
        with contextlib.suppress(OSError):
            if data is None:
                self.local.delete(key)
            else:
                self.local.write(key, data)

    def delete(self, key: str) -> bool:
        client = self._writer()
        self._prefetched.pop(key, None)
        if client is not None:
            try:
                with client.pipeline(transaction=True) as pipe:
                    pipe.delete(self._value_key(key))
                    pipe.hdel(self._meta, key)
                    existed, _ = pipe.execute()
            except _redis_errors() as exc:
                self._fail(exc, writing=True)
            else:
                self._seen[key] = None
                self._write_through(key, None)
                return bool(existed)
        self._note_outage_write(key)
        return self.local.delete(key)

    def update(self, key: str, updater: Updater) -> bytes | None:
        client = self._writer()
        self._prefetched.pop(key, None)
        if client is not None:
            try:
                result = self._remote_update(client, key, updater)
            except _redis_errors() as exc:
                self._fail(exc, writing=True)
            else:
                return result
        with self.local.lock(key):
            # From Redis while it still answers reads (it refused a write).
            old = self.read(key)
            new = updater(old)
            if new is None or new == old:
                return old
            self._note_outage_write(key)
            self.local.write(key, new)
            return new

    def _remote_update(
        self, client: redis.Redis, key: str, updater: Updater
    ) -> bytes | None:
        """Optimistic read-modify-write: WATCH, read, MULTI/EXEC; retry on conflict.

        Three round trips when nobody interferes.  Holders of the key's
        lock are waited for, so updates are exclusive with :meth:`lock`
        as they are with the directory backend.
        """
        import redis

        name, lock_name = self._value_key(key), self._lock_key(key)
        deadline = time.monotonic() + self.lock_timeout
        pause = Backoff()
        with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(name, lock_name)  # type: ignore[no-untyped-call]
                    old, holder = map(_as_bytes, pipe.mget(name, lock_name))
                    if holder is None:
                        new = updater(old)
                        if new is None or new == old:
                            pipe.reset()
                            self._seen[key] = old
                            return old
                        pipe.multi()
                        pipe.set(name, new)
                        pipe.hset(self._meta, key, _stamp())
                        pipe.execute()
                        break
                    pipe.reset()
                except redis.WatchError:
                    pass
                if time.monotonic() >= deadline:
                    raise self._timeout(key, self.lock_timeout)
                pause.sleep()
        self._seen[key] = new
        self._write_through(key, new)
        return new

    # -- locks --------------------------------------------------------------

    def _timeout(self, key: str, waited: float) -> TimeoutError:
        return TimeoutError(
            f"gave up after {waited:g}s waiting for the lock on cache key "
            f"{key!r} (Redis key {self._lock_key(key)!r} at {self.url.address}); "
            "another pytest process holds it"
        )

    @contextmanager
    def lock(self, key: str, timeout: float | None = None) -> Iterator[None]:
        wait = self.lock_timeout if timeout is None else timeout
        client = self._writer()
        lease: Lease | None = None
        if client is not None:
            try:
                lease = acquire(
                    client,
                    self._lock_key(key),
                    wait,
                    lambda: self._timeout(key, wait),
                    self._lease_seconds,
                )
            except _redis_errors() as exc:
                self._fail(exc, writing=True)
        if lease is None:
            with self.local.lock(key, timeout):
                yield
            return
        try:
            yield
        finally:
            try:
                lease.release()
            except _redis_errors() as exc:
                # The lease runs out on its own; the session goes local.
                self._fail(exc)
            if not lease.exclusive:
                self._lost_lock(key, lease)

    def _lost_lock(self, key: str, lease: Lease) -> None:
        held = time.monotonic() - lease.acquired
        how = (
            "another process holds it now"
            if lease.lost
            else "it was taken back, but another process may have held it meanwhile"
        )
        with shown_not_raised():
            warn_cache(
                f"the lock on cache key {key!r} (Redis key {self._lock_key(key)!r} "
                f"at {self.url.address}) ran out while this process held it "
                f"({held:.0f}s; Redis did not answer its renewals for longer than "
                f"the {self._lease_seconds:g}s lease, or this process was "
                f"paused): {how}, so the work done under it may have been done "
                "twice"
            )

    # -- housekeeping -------------------------------------------------------

    def clear(self) -> None:
        client = self._writer()
        if client is not None:
            try:
                client.eval(_CLEAR, 1, self._meta, self._value_prefix)
            except _redis_errors() as exc:
                self._fail(exc, writing=True)
            else:
                self._seen.clear()
        # What the outage journal would replay is cleared too.
        self._outage_journal.discard()
        self.local.clear()

    def tidy(self) -> None:
        # Redis keeps nothing half-done: locks expire on their own.
        self.local.tidy()

    # -- the outage journal -------------------------------------------------

    def _note_outage_write(self, key: str) -> None:
        """Journal ``key``, about to change locally while Redis is unreachable."""
        self._outage_journal.note(key, lambda: self._offline_read(key))
        # From now on the local copy is this session's truth for the key.
        self._seen.pop(key, None)
        self._diverted.add(key)

    def _replay(
        self,
        client: redis.Redis,
        key: str,
        base: bytes | None,
        written: float | None,
    ) -> None:
        """Merge a key changed during an outage into what Redis holds now."""
        import redis

        from pytest_crosscache import _json

        ours = self.local.read(key)
        name = self._value_key(key)
        with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    theirs = _as_bytes(pipe.get(name))
                    their_time = _parse_stamp(pipe.hget(self._meta, key))
                    ours_newer = (
                        written is None or their_time is None or written >= their_time
                    )
                    try:
                        if key.startswith(HISTORY_VALUES):
                            # United by run id: a generic merge would keep one
                            # side's runs of a bucket and drop the other's.
                            from pytest_crosscache.history.store import merge_stored

                            merged = merge_stored(key, ours, theirs)
                        else:
                            merged = merge3(base, ours, theirs, ours_newer=ours_newer)
                            if merged is not None:
                                merged = _json.encode(key, merged)
                    except (ValueError, TypeError, RecursionError) as exc:
                        raise UnreplayableEntry(
                            f"the values cannot be merged ({exc})"
                        ) from None
                    if merged == theirs:
                        pipe.reset()
                        return
                    pipe.multi()
                    if merged is None:
                        pipe.delete(name)
                        pipe.hdel(self._meta, key)
                    else:
                        pipe.set(name, merged)
                        pipe.hset(self._meta, key, _stamp())
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue
                except redis.ResponseError as exc:
                    # Someone stored another kind of value under the key (or
                    # the index): this entry can never go there.  Other
                    # refusals (out of memory, read-only) are the server's
                    # state, and the journal waits for a better one.
                    if str(exc).startswith("WRONGTYPE"):
                        raise UnreplayableEntry(
                            f"Redis holds another kind of value under {name!r}"
                        ) from None
                    raise


#: The test history's values, replayed by their own merge.
HISTORY_VALUES = f"{HISTORY_PREFIX}/"


# --------------------------------------------------------------------------
# Helpers


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    # Builtin TimeoutError is how lock waits end: never mistake it for an outage.
    return (redis.RedisError,)


def _as_bytes(value: object) -> bytes | None:
    """A reply as bytes (redis-py types replies as ``bytes | str``)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return value if isinstance(value, bytes) else None


def _stored_key(raw: object) -> str | None:
    """A key name read from Redis, or ``None`` (with a warning) if it is no key."""
    name = _as_bytes(raw) or b""
    try:
        # Keys are text: every name this backend writes is UTF-8.
        key = name.decode("utf-8")
        relative_parts(key, what="stored key")
        normalize_key(key)  # the key rules beyond paths (reserved suffixes)
    except UnicodeDecodeError:
        warn_cache(
            "skipping a name in the Redis namespace's index: "
            f"{name!r} is not UTF-8 text"
        )
        return None
    except ValueError as exc:
        warn_cache(f"skipping a name in the Redis namespace's index: {exc}")
        return None
    return key


def _stamp() -> str:
    return repr(time.time())


def _parse_stamp(raw: object) -> float | None:
    if not isinstance(raw, (bytes, str)):
        return None
    try:
        return float(raw)
    except ValueError:
        return None


__all__ = ["RedisBackend"]
