"""The protocol every storage backend implements."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol
from typing import runtime_checkable

#: Receives the stored bytes (``None`` when absent) and returns the bytes to
#: store, or ``None`` to leave the stored value as it is.
Updater = Callable[[bytes | None], bytes | None]


@runtime_checkable
class Backend(Protocol):
    """Storage for cache values, addressed by normalised ``/``-separated keys.

    Backends deal in bytes; the :class:`~pytest_crosscache.Cache` facade does
    key validation and JSON.  Failures to reach the storage are reported by
    raising :class:`OSError` (``TimeoutError`` for lock waits), which the
    facade turns into :class:`pytest.PytestCacheWarning`.
    """

    def describe(self) -> str:
        """A human-readable location for messages; must not contain secrets."""

    def location(self, key: str) -> str:
        """Where ``key`` is stored, for messages; must not contain secrets."""

    def read(self, key: str) -> bytes | None:
        """Return the stored bytes of ``key``, or ``None`` if there are none."""

    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: old or new, never a mix."""

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed."""

    def keys(self, pattern: str = "*") -> Iterator[str]:
        """Yield the stored keys whose last segments match ``pattern``.

        ``pattern`` has the meaning of :meth:`pathlib.Path.rglob` below the
        values root, as with ``pytest --cache-show GLOB``.
        """

    def modified(self, key: str) -> float | None:
        """When ``key`` was last written (seconds since the epoch), or ``None``."""

    def lock(
        self, key: str, timeout: float | None = None
    ) -> AbstractContextManager[None]:
        """Hold an exclusive, cross-process lock tied to ``key``.

        Waits at most ``timeout`` seconds (the backend's default when
        ``None``), then raises :class:`TimeoutError` with a message saying
        which key and lock it waited for.
        """

    def update(self, key: str, updater: Updater) -> bytes | None:
        """Read, transform and write ``key`` with no other writer in between.

        Returns the bytes stored afterwards.
        """

    def clear(self) -> None:
        """Remove every stored value."""

    def tidy(self) -> None:
        """Remove leftovers of operations interrupted by killed processes.

        Called once per session by the controlling process; must be cheap
        when there is nothing to do and must never raise.
        """
