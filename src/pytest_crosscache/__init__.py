"""pytest-crosscache: a drop-in replacement for pytest's cache provider."""

from __future__ import annotations

from pytest_crosscache._version import __version__
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.protocol import Backend
from pytest_crosscache.backends.redis import RedisBackend
from pytest_crosscache.cache import Cache
from pytest_crosscache.cache import FactoryError

__all__ = [
    "Backend",
    "Cache",
    "DirectoryBackend",
    "FactoryError",
    "RedisBackend",
    "__version__",
]
