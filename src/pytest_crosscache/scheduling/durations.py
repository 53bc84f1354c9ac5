"""The recorded durations, read once per process, never failing a session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache

if TYPE_CHECKING:
    from pytest_crosscache.cache import Cache


def recorded_durations(cache: Cache) -> dict[str, float]:
    """Node id -> typical seconds from the test history; ``{}`` if it cannot be read.

    A storage failure becomes a :class:`pytest.PytestCacheWarning`: the
    session then runs in its usual order, which is never wrong, only slower.
    """
    from pytest_crosscache.history.store import recorded_durations as read

    with shown_not_raised():
        try:
            return read(cache)
        except OSError as exc:
            warn_cache(
                f"could not read the recorded durations from "
                f"{cache.backend.describe()}: {exc}; tests keep their usual order"
            )
    return {}
