"""The Redis backend: one cache shared by every machine that reaches the server.

Selected by ``--cache-backend=URL``, the ``PYTEST_CACHE_BACKEND``
environment variable or the ``cache_backend`` ini setting.  This module is
imported at pytest start-up (it holds the hook that picks the backend), so
it imports redis-py only once a Redis URL is configured.

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
journal with a three-way merge, so nothing recorded during the outage is
lost and nothing recorded elsewhere meanwhile is overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache.backends._redis_url import RedisURL
from pytest_crosscache.backends.directory import DEFAULT_LOCK_TIMEOUT
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.protocol import Updater

if TYPE_CHECKING:
    import pytest
    import redis

# pytest is imported where it is needed: scripts and the crosscache command
# use RedisBackend without a pytest session.

BACKEND_OPTION = "cache_backend"
BACKEND_ENV = "PYTEST_CACHE_BACKEND"
BACKEND_INI = "cache_backend"
NAMESPACE_INI = "cache_namespace"

#: A dead server must cost a session a couple of seconds, not a couple per key:
#: after the first failure the session stops asking it.
CONNECT_TIMEOUT = 2.0
OPERATION_TIMEOUT = 5.0

#: A lock's lease.  The holder renews it while it lives; a killed holder's
#: lock frees itself after at most this long.
LEASE_SECONDS = 30.0

#: Records every session reads at its start: fetched in one round trip.
PREFETCH = ("cache/lastfailed", "cache/nodeids", "cache/stepwise")
#: A prefetched value answers one read, and only this soon after the fetch
#: (the records are read right after the backend connects) and before this
#: session writes the key.
PREFETCH_FRESH = 0.5

#: Where the outage journals live, inside ``cache_dir`` but outside ``v/``.
JOURNAL_DIR = ".crosscache-redis"

# Compare-and-delete / compare-and-extend: only the holder of the token
# may release or renew a lock.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# Every value of the namespace and its index go in one atomic step.
_CLEAR = """
local names = redis.call('hkeys', KEYS[1])
for _, name in ipairs(names) do
  redis.call('del', ARGV[1] .. name)
end
redis.call('del', KEYS[1])
return #names
"""


# --------------------------------------------------------------------------
# Configuration and hooks


def configured_url(config: pytest.Config) -> str | None:
    """The Redis URL of the session: option, then environment, then ini."""
    value = config.getoption(BACKEND_OPTION, None)
    if not value:
        value = os.environ.get(BACKEND_ENV, "")
    if not value:
        value = os.path.expandvars(str(config.getini(BACKEND_INI) or ""))
    return value.strip() or None


def default_namespace(rootpath: Path) -> str:
    """The rootdir's name, plus the tox environment's when run by tox.

    The same for every checkout of a project that keeps the repository's
    name, on whichever machine, while different projects on one server stay
    apart; tox environments stay apart as their local caches do.
    """
    name = rootpath.name or "root"
    tox_env = os.environ.get("TOX_ENV_NAME")
    return f"{name}/{tox_env}" if tox_env else name


def namespace_from_config(config: pytest.Config) -> str:
    """The ``cache_namespace`` ini value with variables expanded, or the default."""
    raw = str(config.getini(NAMESPACE_INI) or "")
    value = os.path.expandvars(raw).strip()
    return value or default_namespace(config.rootpath)


def check_url(value: str) -> RedisURL:
    """Parse a configured URL; a usage error names it (password redacted)."""
    try:
        return RedisURL(value)
    except ValueError as exc:
        import pytest

        raise pytest.UsageError(str(exc)) from None


def pytest_crosscache_make_backend(
    config: pytest.Config, cachedir: Path
) -> RedisBackend | None:
    """A :class:`RedisBackend` when a Redis URL is configured, else ``None``."""
    value = configured_url(config)
    if value is None:
        return None
    url = check_url(value)
    try:
        import redis  # noqa: F401
    except ImportError:
        import pytest

        raise pytest.UsageError(
            f"the cache backend {url.redacted} needs redis-py: "
            "pip install 'pytest-crosscache[redis]'"
        ) from None
    from pytest_crosscache.plugin import lock_timeout

    backend = RedisBackend(
        url,
        namespace=namespace_from_config(config),
        cachedir=cachedir,
        lock_timeout=lock_timeout(config),
    )
    backend.on_outage = _session_warner(config)
    return backend


def _session_warner(config: pytest.Config) -> Callable[[str], None]:
    """Report an outage in the session's warnings summary, whenever it happens.

    The backend usually connects in ``pytest_configure``, where pytest
    captures no warnings; recording it through the hook that feeds the
    summary shows it there exactly once, and never turns it into an error
    under ``-W error``: no test caused it.
    """

    def warn(message: str) -> None:
        import warnings

        import pytest

        record = warnings.WarningMessage(
            pytest.PytestCacheWarning(message),
            pytest.PytestCacheWarning,
            __file__,
            0,
        )
        config.hook.pytest_warning_recorded.call_historic(
            kwargs={
                "warning_message": record,
                "when": "config",
                "nodeid": "",
                "location": None,
            }
        )

    return warn


def pytest_configure(config: pytest.Config) -> None:
    # Refuse a bad URL before anything runs, even if nothing uses the cache.
    value = configured_url(config)
    if value is not None:
        check_url(value)


def pytest_report_header(config: pytest.Config) -> str | None:
    value = configured_url(config)
    if value is None:
        return None
    return (
        f"cache backend: {RedisURL(value).redacted} "
        f"(namespace {namespace_from_config(config)!r})"
    )


# --------------------------------------------------------------------------
# The backend


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

        :raises ValueError: if the URL's scheme is not ``redis``, ``rediss``
            or ``unix``; the message shows the URL without its password.
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
        # win over these.
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
        client = redis.Redis.from_url(self.url.secret, **options)
        self._client = client
        self._online = True
        try:
            self._replay_journal(client)
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

    def _fail(self, exc: BaseException) -> None:
        """Give up on Redis for the rest of the session, with one warning."""
        with self._state:
            if self._online is False:
                return
            self._online = False
            client, self._client = self._client, None
            self._prefetched.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        reason = self.url.scrub(f"{type(exc).__name__}: {exc}")
        message = (
            f"cache backend Redis at {self.url.address} is unreachable "
            f"({reason}); this session keeps its cache in {self.local.root} "
            "and the next session that reaches Redis sends it there"
        )
        if self.on_outage is not None:
            self.on_outage(message)
            return
        with shown_not_raised():
            warn_cache(message)

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
        if client is not None:
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
        if client is not None:
            try:
                stamp = client.hget(self._meta, key)
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                return _parse_stamp(stamp)
        return self.local.modified(key)

    def keys(self, pattern: str = "*") -> Iterator[str]:
        client = self._connection()
        if client is not None:
            try:
                names = client.hkeys(self._meta)
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                for raw in names:
                    name = _as_bytes(raw) or b""
                    key = name.decode("utf-8", "surrogateescape")
                    if key and rglob_match(key, pattern):
                        yield key
                return
        yield from self.local.keys(pattern)

    # -- writes -------------------------------------------------------------

    def write(self, key: str, data: bytes) -> None:
        client = self._connection()
        self._prefetched.pop(key, None)
        if client is not None:
            try:
                with client.pipeline(transaction=True) as pipe:
                    pipe.set(self._value_key(key), data)
                    pipe.hset(self._meta, key, _stamp())
                    pipe.execute()
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                self._seen[key] = data
                self._write_through(key, data)
                return
        self._journal(key)
        self.local.write(key, data)

    def _write_through(self, key: str, data: bytes | None) -> None:
        # Best effort: Redis holds the value, the local copy is a convenience.
        with contextlib.suppress(OSError):
            if data is None:
                self.local.delete(key)
            else:
                self.local.write(key, data)

    def delete(self, key: str) -> bool:
        client = self._connection()
        self._prefetched.pop(key, None)
        if client is not None:
            try:
                with client.pipeline(transaction=True) as pipe:
                    pipe.delete(self._value_key(key))
                    pipe.hdel(self._meta, key)
                    existed, _ = pipe.execute()
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                self._seen[key] = None
                self._write_through(key, None)
                return bool(existed)
        self._journal(key)
        return self.local.delete(key)

    def update(self, key: str, updater: Updater) -> bytes | None:
        client = self._connection()
        self._prefetched.pop(key, None)
        if client is not None:
            try:
                result = self._remote_update(client, key, updater)
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                return result
        with self.local.lock(key):
            old = self._offline_read(key)
            new = updater(old)
            if new is None or new == old:
                return old
            self._journal(key)
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
        pause = _Backoff()
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
        client = self._connection()
        lease: _Lease | None = None
        if client is not None:
            try:
                lease = self._acquire(client, key, wait)
            except _redis_errors() as exc:
                self._fail(exc)
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

    def _acquire(self, client: redis.Redis, key: str, wait: float) -> _Lease:
        name = self._lock_key(key)
        token = os.urandom(16).hex()
        deadline = time.monotonic() + wait
        pause = _Backoff()
        lease_ms = int(LEASE_SECONDS * 1000)
        while not client.set(name, token, nx=True, px=lease_ms):
            if time.monotonic() >= deadline:
                raise self._timeout(key, wait)
            pause.sleep()
        return _Lease(client, name, token, lease_ms)

    # -- housekeeping -------------------------------------------------------

    def clear(self) -> None:
        client = self._connection()
        if client is not None:
            try:
                client.eval(_CLEAR, 1, self._meta, self._value_prefix)
            except _redis_errors() as exc:
                self._fail(exc)
            else:
                self._seen.clear()
        # What the outage journal would replay is cleared too.
        with contextlib.suppress(OSError):
            self._journal_path().unlink()
        self.local.clear()

    def tidy(self) -> None:
        # Redis keeps nothing half-done: locks expire on their own.
        self.local.tidy()

    # -- the outage journal -------------------------------------------------

    def _journal_path(self) -> Path:
        import hashlib

        identity = f"{self.url.scheme}|{self.url.address}|{self.url.db}|"
        digest = hashlib.sha1((identity + self.namespace).encode()).hexdigest()[:16]
        return self.local.root / JOURNAL_DIR / f"journal-{digest}.json"

    @contextmanager
    def _journal_locked(self) -> Iterator[Path]:
        import filelock

        from pytest_crosscache._cachedir import ensure_cache_dir

        path = self._journal_path()
        ensure_cache_dir(self.local.root)
        path.parent.mkdir(exist_ok=True)
        lock = filelock.FileLock(path.with_suffix(".lock"), timeout=self.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise TimeoutError(
                f"gave up after {self.lock_timeout:g}s waiting for the lock on "
                f"the Redis outage journal {path}"
            ) from exc
        try:
            yield path
        finally:
            lock.release()

    def _journal(self, key: str) -> None:
        """Note that ``key`` changes during an outage, and its value before."""
        with self._journal_locked() as path:
            entries = _load_journal(path)
            entry = entries.get(key)
            if entry is None:
                base = self._offline_read(key)
                entry = entries[key] = {"base": _text(base)}
            entry["time"] = time.time()
            _save_journal(path, entries)
        # From now on the local copy is this session's truth for the key.
        self._seen.pop(key, None)

    def _replay_journal(self, client: redis.Redis) -> None:
        path = self._journal_path()
        if not path.exists():
            return
        with self._journal_locked() as path:
            entries = _load_journal(path)
            try:
                for key in list(entries):
                    self._replay(client, key, entries[key])
                    del entries[key]
            finally:
                if entries:
                    _save_journal(path, entries)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    def _replay(self, client: redis.Redis, key: str, entry: dict[str, Any]) -> None:
        import redis

        from pytest_crosscache import _json

        base = _bytes(entry.get("base"))
        written = entry.get("time")
        ours = self.local.read(key)
        name = self._value_key(key)
        with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    theirs = _as_bytes(pipe.get(name))
                    their_time = _parse_stamp(pipe.hget(self._meta, key))
                    ours_newer = (
                        not isinstance(written, (int, float))
                        or their_time is None
                        or written >= their_time
                    )
                    merged = merge3(base, ours, theirs, ours_newer=ours_newer)
                    if merged is not None:
                        merged = _json.encode(key, merged)
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


def _stamp() -> str:
    return repr(time.time())


def _parse_stamp(raw: object) -> float | None:
    if not isinstance(raw, (bytes, str)):
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _bytes(text: object) -> bytes | None:
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else None


def _load_journal(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def _save_journal(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    from pytest_crosscache._atomic import atomic_write

    atomic_write(path, json.dumps(entries, indent=1).encode())


class _Backoff:
    """Sleeps of 5 ms doubling up to 100 ms: quick when a lock is released soon."""

    def __init__(self) -> None:
        self.delay = 0.005

    def sleep(self) -> None:
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, 0.1)


class _Lease:
    """A held Redis lock, renewed in the background until released."""

    def __init__(self, client: redis.Redis, name: str, token: str, ms: int) -> None:
        self.client = client
        self.name = name
        self.token = token
        self.ms = ms
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, name=f"crosscache-lease {name}", daemon=True
        )
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ms / 3000):
            try:
                self.client.eval(_RENEW, 1, self.name, self.token, self.ms)
            except Exception:
                return

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.eval(_RELEASE, 1, self.name, self.token)


# --------------------------------------------------------------------------
# Merging and matching (pure functions)


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


def rglob_match(key: str, pattern: str) -> bool:
    """Whether ``Path(values).rglob(pattern)`` would yield the value ``key``.

    ``rglob(p)`` is ``glob("**/" + p)``: the pattern's segments match the
    key's last segments, ``**`` any number of segments, and a ``*`` does
    not cross a ``/``.
    """
    pattern_parts = [part for part in pattern.split("/") if part not in ("", ".")]
    return _match_parts(["**", *pattern_parts], key.split("/"))


def _match_parts(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    from fnmatch import fnmatchcase

    # Dynamic programming over (pattern index, parts index).
    reach = {0}
    for segment in pattern:
        nxt: set[int] = set()
        for pos in reach:
            if segment == "**":
                nxt.update(range(pos, len(parts) + 1))
            elif pos < len(parts) and fnmatchcase(parts[pos], segment):
                nxt.add(pos + 1)
        reach = nxt
        if not reach:
            return False
    return len(parts) in reach


__all__ = [
    "RedisBackend",
    "merge3",
    "pytest_crosscache_make_backend",
    "rglob_match",
]
