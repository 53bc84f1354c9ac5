"""An example third-party backend: every cache value in one SQLite database.

Use it as a template for your own backend.  A plugin (or the rootdir's
``conftest.py``) implements ``pytest_crosscache_make_backend`` and returns
an object with the methods of :class:`pytest_crosscache.Backend`; the
``Cache`` facade does keys and JSON, the backend only stores bytes::

    pytest -p sqlite_backend --sqlite-cache=/path/to/cache.sqlite
"""

from __future__ import annotations

import fnmatch
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_crosscache import Backend
from pytest_crosscache import DirectoryBackend
from pytest_crosscache.backends import Updater


class SQLiteBackend:
    """Values in a table ``value(key, data, written)``; SQLite makes each change atomic."""

    def __init__(self, database: Path, *, lock_timeout: float = 30.0) -> None:
        self.database = database
        self.lock_timeout = lock_timeout
        # Cross-process locks: borrow the directory backend's file locks.
        self._locks = DirectoryBackend(database.with_suffix(".locks"), lock_timeout)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS value"
                " (key TEXT PRIMARY KEY, data BLOB NOT NULL, written REAL NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.database, timeout=self.lock_timeout)

    def describe(self) -> str:
        return f"sqlite:{self.database}"

    def location(self, key: str) -> str:
        return f"sqlite:{self.database}#{key}"

    def read(self, key: str) -> bytes | None:
        with self._connect() as db:
            row = db.execute("SELECT data FROM value WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def modified(self, key: str) -> float | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT written FROM value WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else float(row[0])

    def write(self, key: str, data: bytes) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO value VALUES (?, ?, ?)",
                (key, data, time.time()),
            )

    def delete(self, key: str) -> bool:
        with self._connect() as db:
            return db.execute("DELETE FROM value WHERE key = ?", (key,)).rowcount > 0

    def keys(self, pattern: str = "*") -> Iterator[str]:
        with self._connect() as db:
            keys = [row[0] for row in db.execute("SELECT key FROM value")]
        # rglob semantics, simplified: the pattern matches the key's last segments.
        depth = pattern.count("/") + 1
        for key in keys:
            tail = "/".join(key.split("/")[-depth:])
            if fnmatch.fnmatchcase(tail, pattern):
                yield key

    @contextmanager
    def lock(self, key: str, timeout: float | None = None) -> Iterator[None]:
        with self._locks.lock(key, timeout):
            yield

    def update(self, key: str, updater: Updater) -> bytes | None:
        # Under the key's lock, so updates are exclusive with lock() holders.
        with self.lock(key):
            old = self.read(key)
            new = updater(old)
            if new is None or new == old:
                return old
            self.write(key, new)
            return new

    def clear(self) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM value")

    def tidy(self) -> None:
        pass


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--sqlite-cache", help="keep cache values in this SQLite file")


def pytest_crosscache_make_backend(
    config: pytest.Config, cachedir: Path
) -> Backend | None:
    path = config.getoption("sqlite_cache")
    if not path:
        return None  # let another backend (by default the directory) serve
    return SQLiteBackend(Path(path).resolve())
