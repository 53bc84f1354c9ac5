"""Storage backends: where cache values live."""

from __future__ import annotations

from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.protocol import Backend
from pytest_crosscache.backends.protocol import Updater

__all__ = ["Backend", "DirectoryBackend", "Updater"]
