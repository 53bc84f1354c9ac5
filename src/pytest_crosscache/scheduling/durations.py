"""The recorded durations, read once per session, never failing it."""

from __future__ import annotations

import pytest

from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache.cache import Cache

#: The session's durations, shared by --sf and --shard (one read of the history).
_durations_key = pytest.StashKey[dict[str, float]]()


def recorded_durations(config: pytest.Config) -> dict[str, float]:
    """Node id -> typical seconds from the test history; ``{}`` if it cannot be read.

    Read on first use in a session and kept: ``--sf`` and ``--shard`` plan
    from the same numbers.  A storage failure becomes a
    :class:`pytest.PytestCacheWarning`: the session then runs in its usual
    order, which is never wrong, only slower.
    """
    found = config.stash.get(_durations_key, None)
    if found is None:
        found = config.stash[_durations_key] = _read(config)
    return found


def _read(config: pytest.Config) -> dict[str, float]:
    from pytest_crosscache.history.store import recorded_durations as read

    cache = Cache.for_config(config)
    with shown_not_raised():
        try:
            return read(cache)
        except OSError as exc:
            warn_cache(
                f"could not read the recorded durations from "
                f"{cache.backend.describe()}: {exc}; tests keep their usual order"
            )
    return {}
