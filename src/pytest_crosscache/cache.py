"""The :class:`Cache` facade: keys, JSON and warnings over a storage backend."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import ExitStack
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar
from typing import cast
from typing import final

from pytest_crosscache import _json
from pytest_crosscache._deferred import DEFERRABLE
from pytest_crosscache._deferred import Deferred
from pytest_crosscache._keys import DIRS_DIR
from pytest_crosscache._keys import check_dir_name
from pytest_crosscache._keys import normalize_key
from pytest_crosscache._keys import storage_problem
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache.backends.directory import CachePathError
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.directory import remove_tree
from pytest_crosscache.fs.cachedir import cache_dir_from_config
from pytest_crosscache.fs.cachedir import ensure_cache_dir
from pytest_crosscache.fs.paths import confined

if TYPE_CHECKING:
    import pytest

    from pytest_crosscache.backends.protocol import Backend

    #: Where the plugin keeps the session's :class:`Cache` on ``config.stash``.
    cache_key: pytest.StashKey[Cache]

T = TypeVar("T")


#: Keys under which ``get_or_set`` tells waiting processes that computing a
#: value failed.
FAILURES_PREFIX = "crosscache/failed"


class FactoryError(RuntimeError):
    """Computing a value failed in another process while this one waited for it."""

    def __init__(self, key: str, error: str) -> None:
        super().__init__(
            f"computing cache value {key!r} failed in another process while this "
            f"one waited for it: {error}"
        )
        self.key = key
        self.error = error

    def __reduce__(self) -> tuple[type[FactoryError], tuple[str, str]]:
        return FactoryError, (self.key, self.error)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _stash_key() -> pytest.StashKey[Cache]:
    # Made on first use rather than at import, so that the crosscache
    # command, which uses this module without a pytest session, does not pay
    # for importing pytest.
    key: pytest.StashKey[Cache] | None = globals().get("cache_key")
    if key is None:
        import pytest

        key = globals()["cache_key"] = pytest.StashKey[Cache]()
    return key


def __getattr__(name: str) -> Any:
    if name == "cache_key":
        return _stash_key()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cache_enabled(config: pytest.Config) -> bool:
    """Whether this session has a cache: false under ``-p no:cacheprovider``.

    pytest-crosscache's own extras (history, scheduling, ...) check this
    before registering anything that reads or writes the cache, so that
    ``-p no:cacheprovider`` means no cache at all, as it does with pytest
    alone.  Valid from ``pytest_load_initial_conftests`` on; it does not
    change when a conftest later unregisters a plugin by name.
    """
    return config.stash.get(_stash_key(), None) is not None


def session_cache(config: pytest.Config) -> Cache | None:
    """The cache this session's records go to: ``config.cache`` as it is now.

    ``None`` when a conftest has put another kind of cache object on
    ``config`` (pytest's own ``Cache``, say): records that need
    pytest-crosscache's locked merges, such as the test history, are then
    not kept, as pytest's provider would not keep them either.
    """
    current = getattr(config, "cache", None)
    return current if isinstance(current, Cache) else None


_MISSING: Any = object()


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: :meth:`Cache._read_record` results for a key without a value, and for
#: one whose stored bytes are not JSON.
ABSENT: Any = _Marker("ABSENT")
DAMAGED: Any = _Marker("DAMAGED")


@final
class Cache:
    """Values and directories that persist between pytest sessions.

    This is the object behind ``config.cache`` and the ``cache`` fixture.
    Keys are ``/``-separated relative names, conventionally starting with the
    name of your plugin or application (``"myplugin/state"``).  Values are
    anything :mod:`json` can represent.

    Create one with :meth:`for_config`; constructing it directly is meant
    for tools that work on a cache directory outside a pytest session.
    """

    def __init__(self, cachedir: Path, backend: Backend | None = None) -> None:
        self._dir_chosen: Path | None = Path(cachedir)
        self._locate: Callable[[], Path] | None = None
        self._chosen_backend = backend
        self._make_backend: Callable[[Path], Backend | None] | None = None

    def __repr__(self) -> str:
        return f"<Cache {self._backend.describe()}>"

    @classmethod
    def _deferred(
        cls,
        locate: Callable[[], Path],
        make_backend: Callable[[Path], Backend | None],
    ) -> Cache:
        """A cache whose directory and backend are chosen on first use.

        The plugin creates ``config.cache`` before conftests are imported;
        deferring the choices lets a conftest take part as long as nothing
        used the cache before: a backend hook in a rootdir conftest.py, or
        a ``tryfirst`` ``pytest_configure`` that changes ``cache_dir``.
        """
        cache = cls(Path())
        cache._dir_chosen = None
        cache._locate = locate
        cache._make_backend = make_backend
        return cache

    @property
    def _dir(self) -> Path:
        chosen = self._dir_chosen
        if chosen is None:
            locate, self._locate = self._locate, None
            assert locate is not None
            chosen = self._dir_chosen = locate()
        return chosen

    def _settle_location(self) -> None:
        """Choose the directory now if it is not chosen yet."""
        self._dir  # noqa: B018 (the property chooses it)

    def _relocate(self, cachedir: Path) -> None:
        """Keep values and ``mkdir`` directories in ``cachedir`` from now on."""
        old = self._chosen_backend
        self._dir_chosen, self._locate = Path(cachedir), None
        if old is None:
            return
        if self._make_backend is not None or isinstance(old, DirectoryBackend):
            # Chosen again, for the new place, on next use.
            self._chosen_backend = None
            if self._make_backend is None:
                timeout = cast(DirectoryBackend, old).lock_timeout
                self._make_backend = lambda path: DirectoryBackend(path, timeout)
        # Any other backend keeps its values where it keeps them (a Redis
        # namespace); only directories made by mkdir move.

    @property
    def _backend(self) -> Backend:
        backend = self._chosen_backend
        if backend is None:
            make = self._make_backend
            backend = make(self._dir) if make is not None else None
            if backend is None:
                backend = DirectoryBackend(self._dir)
            self._chosen_backend = backend
        return backend

    @classmethod
    def for_config(cls, config: pytest.Config) -> Cache:
        """Return the cache of a pytest configuration.

        Inside a session that runs pytest-crosscache this is the very object
        stored as ``config.cache`` (the plugin's own, should a conftest have
        put another kind of object there); otherwise a new one for the
        configured ``cache_dir`` and backend.
        """
        current = getattr(config, "cache", None)
        if isinstance(current, Cache):
            return current
        existing = config.stash.get(_stash_key(), None)
        if existing is not None:
            return existing
        hook = getattr(config.hook, "pytest_crosscache_make_backend", None)
        if hook is None:
            # pytest-crosscache is not active in this session (-p no:crosscache).
            return cls(cache_dir_from_config(config))
        return cls._deferred(
            lambda: cache_dir_from_config(config),
            lambda cachedir: hook(config=config, cachedir=cachedir),
        )

    @property
    def cachedir(self) -> Path:
        """The local cache directory (``cache_dir``), home of ``mkdir`` directories."""
        return self._dir

    @property
    def _cachedir(self) -> Path:
        # pytest's name for the directory: plugins and conftests written
        # against pytest's builtin provider read it, and some assign it.
        return self._dir

    @_cachedir.setter
    def _cachedir(self, value: str | os.PathLike[str]) -> None:
        # As with pytest's Cache, whatever is stored or made from now on
        # goes to the new directory; nothing is moved or copied there.
        self._relocate(Path(value))

    @property
    def backend(self) -> Backend:
        """The storage backend holding the values."""
        return self._backend

    def get(self, key: str, default: Any, *, max_age: float | None = None) -> Any:
        """Return the value stored under ``key``, or ``default``.

        ``default`` is also returned when the stored value cannot be read or
        is not valid JSON, so a damaged cache never fails a test run, and
        for keys that can hold no value (see :ref:`key-rules`).

        :param max_age: if given, a value written more than this many
            seconds ago counts as absent (``default`` is returned).  The age
            comes from the storage itself (a file's modification time), so
            values written by pytest's builtin provider have one too.
        :raises ValueError: if ``key`` is absolute or resolves outside the
            cache's values directory.
        :raises TypeError: if ``key`` is not a string.
        """
        key = normalize_key(key, allow_nul=True)
        if not key or "\0" in key:
            # pytest's provider answers these with the default, too.
            return default
        if max_age is not None and not self._is_fresh(key, max_age):
            return default
        data = self._backend.read(key)
        if data is None:
            return default
        try:
            return _json.decode(data)
        except (ValueError, RecursionError):
            return default

    def _is_fresh(self, key: str, max_age: float) -> bool:
        # Asked before reading: a write landing in between makes the value
        # newer than the time checked, never older.
        written = self._backend.modified(key)
        return written is not None and time.time() - written <= max_age

    def get_or_set(
        self,
        key: str,
        factory: Callable[[], T],
        *,
        max_age: float | None = None,
        timeout: float | None = None,
    ) -> T:
        """Return the value of ``key``, computing and storing it first if needed.

        Across processes (xdist workers, concurrent sessions) exactly one
        caller runs ``factory``; the others wait for the key's lock and then
        read the value it stored.  Later sessions reuse the value until it
        is older than ``max_age`` seconds (forever when ``None``).

        If ``factory`` raises, nothing is stored and the exception
        propagates; callers that were waiting meanwhile raise
        :class:`FactoryError` naming the key and the original error instead
        of running ``factory`` again.  The next caller after that tries
        anew.  Only exceptions are passed on this way: a factory that skips
        (``pytest.skip``) or is interrupted leaves waiting callers to run
        it themselves.  When the cache cannot be locked or written, a
        :class:`pytest.PytestCacheWarning` is issued and ``factory``'s
        result returned without being stored.

        :param timeout: how long to wait for another process computing the
            value, in seconds (the ``cache_lock_timeout`` ini setting when
            ``None``).
        :raises TimeoutError: if the wait runs out; the message names the
            key and the lock.
        """
        key = normalize_key(key)
        value = self.get(key, _MISSING, max_age=max_age)
        if value is not _MISSING:
            return cast(T, value)
        asked = time.time()
        failures = f"{FAILURES_PREFIX}/{key}"
        with ExitStack() as held:
            try:
                held.enter_context(self._backend.lock(key, timeout))
            except TimeoutError:
                raise
            except OSError as exc:
                # No lock means no storage either (a read-only or blocked
                # cache): compute for this caller alone, as a session goes
                # on without its cache, rather than fail it.
                self._warn_failure(key, exc)
                return factory()
            value = self.get(key, _MISSING, max_age=max_age)
            if value is not _MISSING:
                return cast(T, value)
            failure = self.get(failures, None)
            if isinstance(failure, dict) and failure.get("time", 0) >= asked:
                raise FactoryError(key, str(failure.get("error")))
            try:
                value = factory()
            except Exception as exc:
                # Only errors are passed on to waiting callers: a skip,
                # exit or interrupt (BaseException) says nothing about
                # whether they can compute the value themselves.
                self.set(failures, {"time": time.time(), "error": _describe(exc)})
                raise
            self.set(key, value)
            if failure is not None:
                self._backend.delete(normalize_key(failures))
            return value

    def _read_record(self, key: str, *, warn: bool = True) -> Any:
        """Read a record the plugin relies on, telling absent from damaged.

        Returns the value, :data:`ABSENT` or :data:`DAMAGED`; a damaged
        record is reported with a warning naming it unless ``warn`` is off.
        """
        key = normalize_key(key)
        data = self._backend.read(key)
        if key in DEFERRABLE:
            deferred = Deferred(self._dir, key)
            data = deferred.fold(data, deferred.files())
        if data is None:
            return ABSENT
        try:
            return _json.decode(data)
        except (ValueError, RecursionError):
            if warn:
                warn_cache(
                    f"ignoring {key!r}: {self._backend.location(key)} is not valid "
                    "JSON; starting from an empty record"
                )
            return DAMAGED

    def set(self, key: str, value: object) -> None:
        """Store ``value`` (anything JSON can represent) under ``key``.

        The write is atomic: concurrent readers see the previous value or
        this one.  Failing storage, and a key that cannot hold a value (a
        name too long for the file system, see :ref:`key-rules`), give a
        :class:`pytest.PytestCacheWarning` and leave the previous value in
        place.

        :raises ValueError: if ``key`` is absolute, resolves outside the
            cache's values directory or contains a NUL, or ``value`` cannot
            be encoded (circular, lone surrogates, integers too long for
            Python to print); nothing is written.
        :raises TypeError: if ``key`` is not a string or ``value`` holds a
            type JSON cannot represent; nothing is written.
        """
        key = normalize_key(key)
        data = _json.encode(key, value)
        if self._refuse_storage(key):
            return
        try:
            self._backend.write(key, data)
        except OSError as exc:
            self._warn_failure(key, exc)

    def update(self, key: str, func: Callable[[Any], Any], default: Any) -> Any:
        """Replace the value of ``key`` by ``func(current)`` under a lock.

        ``current`` is the stored value (``default`` when absent or
        unreadable).  No other process or thread updating the same key runs
        in between the read and the write, so concurrent updates compose.
        The value is only written when ``func`` changed it.  Returns the
        value stored afterwards (``func``'s result).

        If the lock or the storage fails, or ``key`` cannot hold a value, a
        :class:`pytest.PytestCacheWarning` is issued, nothing is stored and
        ``func``'s result is returned when it ran (``default`` otherwise).
        Exceptions raised by ``func`` and serialisation errors propagate,
        with nothing written.  Keys are refused as by :meth:`set`.
        """
        key = normalize_key(key)
        if self._refuse_storage(key):
            return default
        result: Any = _MISSING

        def apply(data: bytes | None) -> bytes:
            nonlocal result
            current = default
            if data is not None:
                try:
                    current = _json.decode(data)
                except (ValueError, RecursionError):
                    current = default
            result = func(current)
            # Compare encodings, not values: 1 == True == 1.0 in Python and
            # dict equality ignores key order.  Equal bytes are not rewritten.
            return _json.encode(key, result)

        deferred = Deferred(self._dir, key) if key in DEFERRABLE else None
        try:
            pending = deferred.files() if deferred is not None else None
            if pending:
                assert deferred is not None
                self._update_folding(key, deferred, apply)
            else:
                self._backend.update(key, apply)
        except TimeoutError as exc:
            if deferred is None:
                self._warn_failure(key, exc)
            else:
                self._defer(key, deferred, apply, exc)
        except OSError as exc:
            self._warn_failure(key, exc)
        return default if result is _MISSING else result

    def _update_folding(
        self,
        key: str,
        deferred: Deferred,
        apply: Callable[[bytes | None], bytes | None],
        timeout: float | None = None,
    ) -> None:
        """Update a record with its deferred updates folded in, under its lock.

        The deferred files are deleted before the lock is released, so no
        other session can fold them a second time.
        """
        with self._backend.lock(key, timeout):
            files = deferred.files()
            new = apply(deferred.fold(self._backend.read(key), files))
            if new is not None:
                self._backend.write(key, new)
            deferred.discard(files)

    def _settle_deferred(self) -> None:
        """Merge record updates deferred past a stuck lock, if the lock is free now.

        Called at the end of a session (not by xdist workers), so that the
        records in the cache hold them even when no later session changes
        the record; a lock that is still busy is not waited for.
        """
        for key in sorted(DEFERRABLE):
            deferred = Deferred(self._dir, key)
            if deferred.files():
                try:
                    self._update_folding(key, deferred, lambda data: data, 0)
                except OSError:
                    continue

    def _defer(
        self,
        key: str,
        deferred: Deferred,
        apply: Callable[[bytes | None], bytes],
        exc: TimeoutError,
    ) -> None:
        """The lock stayed busy: keep this session's update for the next one."""
        try:
            base = self._backend.read(key)
            base = deferred.fold(base, deferred.files())
            path = deferred.save(base, apply(base))
        except OSError as failure:
            warn_cache(
                f"cache value {key!r} was not written: {exc}; keeping it for the "
                f"next session failed too: {failure}"
            )
            return
        warn_cache(
            f"cache value {key!r} was not written: {exc}; this session's update "
            f"is kept in {path}, seen by every session that reads the record "
            "and merged into it by the next one that updates it"
        )

    @contextmanager
    def lock(self, key: str, *, timeout: float | None = None) -> Iterator[None]:
        """Hold the cross-process lock of ``key`` for the ``with`` block.

        Use it to make a sequence of :meth:`get` and :meth:`set` calls
        exclusive with other holders of the same lock and with
        :meth:`update` of that key (do not call :meth:`update` on the same
        key inside the block: the lock is not re-entrant across calls).

        :param timeout: seconds to wait for the lock (the
            ``cache_lock_timeout`` ini setting when ``None``).
        :raises TimeoutError: if the lock is not free in time; the message
            says which key and lock it waited for.
        """
        with self._backend.lock(normalize_key(key), timeout):
            yield

    def mkdir(self, name: str) -> Path:
        """Return the directory ``d/<name>`` of the cache, creating it if needed.

        Use it to keep files (database dumps, downloads) between sessions.
        Directories are always local, whichever backend stores the values.

        :param name: a single path component, e.g. your plugin's name.
        :raises ValueError: if ``name`` contains ``/`` or a NUL, or is
            ``..``, as pytest's provider refuses them; or if ``d/`` or
            ``d/<name>`` is a symbolic link leading out of the cache
            directory.
        :raises TypeError: if ``name`` is not a string.
        :raises OSError: if the directory cannot be created (for instance
            a name longer than the file system allows), as with pytest.
        """
        # The directory may come from elsewhere (a shard's artifact): one
        # that is a link out of the cache is refused, not written through.
        # "" and "." name d/ itself, as with pytest.
        name = check_dir_name(name)
        if name in ("", "."):
            path = confined(self._dir, DIRS_DIR)
        else:
            path = confined(self._dir, name, under=DIRS_DIR)
        ensure_cache_dir(self._dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def makedir(self, name: str) -> Any:
        """Like :meth:`mkdir`, returning the legacy ``py.path.local`` type.

        Kept for plugins written against pytest's legacy-path API, such as
        pytest-xprocess.
        """
        import py

        return py.path.local(self.mkdir(name))

    def _clear(self) -> None:
        """Remove all values and directories (``--cache-clear``)."""
        try:
            self._backend.clear()
        except OSError as exc:
            warn_cache(
                f"could not clear cache values in {self._backend.describe()}: {exc}"
            )
        from pytest_crosscache import _deferred

        _deferred.clear(self._dir)
        try:
            remove_tree(self._dir / DIRS_DIR)
        except FileNotFoundError:
            pass
        except OSError as exc:
            warn_cache(f"could not clear {self._dir / DIRS_DIR}: {exc}")

    def _refuse_storage(self, key: str) -> bool:
        """Warn and return True when ``key`` can never hold a value."""
        problem = storage_problem(key)
        if problem is None:
            return False
        warn_cache(
            f"cache could not write path {self._backend.location(key)}: {problem}"
        )
        return True

    def _warn_failure(self, key: str, exc: OSError) -> None:
        if isinstance(exc, CachePathError):
            warn_cache(str(exc))
        elif isinstance(exc, TimeoutError):
            warn_cache(f"cache value {key!r} was not written: {exc}")
        else:
            warn_cache(
                f"cache could not write path {self._backend.location(key)}: {exc}"
            )
