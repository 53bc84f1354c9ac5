"""The provider's records read from and written to ``config.cache`` as it is then.

pytest's recorders read their record when they are created and write it at
the end of the session through whatever ``config.cache`` is at that moment,
so a conftest that relocates the cache, or replaces ``config.cache``, in
between decides where the session's results go.  The same holds here.  A
:class:`~pytest_crosscache.Cache` of ours gets the record merged under its
lock; any other cache object (pytest's own ``Cache``, which has only
``get``, ``set`` and ``mkdir``) gets the session's view through its
``set``, as pytest would write it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from pytest_crosscache.cache import ABSENT
from pytest_crosscache.cache import DAMAGED
from pytest_crosscache.cache import Cache


def read_record(cache: object, key: str) -> Any:
    """The stored value, :data:`ABSENT` or :data:`DAMAGED` (ours only tells damage)."""
    if isinstance(cache, Cache):
        return cache._read_record(key)
    if cache is None:
        return ABSENT
    return cache.get(key, ABSENT)  # type: ignore[attr-defined]


def place(cache: object) -> tuple[object, str]:
    """What identifies where a cache keeps values: the object and its directory."""
    return cache, str(getattr(cache, "_cachedir", ""))


def store_record(
    cache: object,
    key: str,
    own: Any,
    merge: Callable[[Any], Any] | None,
    default: Any,
) -> None:
    """Write a record at the end of a session.

    :param own: this session's view of the record, written as it is when
        there is nothing to merge with.
    :param merge: applies this session's changes to the stored record;
        ``None`` when the record was read from another place than the
        one written now (the cache was relocated): the session's view
        then replaces what is there, as pytest's would.
    :param default: what an absent record counts as.
    """
    if isinstance(cache, Cache):
        apply = merge if merge is not None else (lambda stored: own)
        # Most sessions change nothing: check without taking the lock.  A
        # writer that slips in after this check finished later than us, so
        # its record rightly stands.  A damaged record is always rewritten.
        stored = cache._read_record(key, warn=False)
        if stored is ABSENT:
            stored = default
        if stored is not DAMAGED:
            # Whatever ``apply`` warns about, it warns again under the lock.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                unchanged = apply(stored) == stored
            if unchanged:
                return
        cache.update(key, apply, default)
    elif cache is not None and cache.get(key, default) != own:  # type: ignore[attr-defined]
        cache.set(key, own)  # type: ignore[attr-defined]
