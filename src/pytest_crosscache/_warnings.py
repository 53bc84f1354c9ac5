"""One place that turns cache problems into ``pytest.PytestCacheWarning``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# pytest is imported where it is used: the crosscache command imports this
# module without running pytest, and importing pytest would dominate its run time.


def warn_cache(message: str) -> None:
    """Issue a :class:`pytest.PytestCacheWarning`."""
    import pytest

    warnings.warn(pytest.PytestCacheWarning(message), stacklevel=3)


@contextmanager
def shown_not_raised() -> Iterator[None]:
    """Show cache warnings from the plugin's own bookkeeping, even under ``-W error``.

    Projects commonly turn warnings into errors for their tests.  A cache
    that cannot be written at the end of a session is no test's fault, and
    turning it into an INTERNALERROR would change the session's outcome;
    inside this block the warning is always shown (pytest still records it
    for the warnings summary) and never raised.
    """
    import pytest

    with warnings.catch_warnings():
        warnings.simplefilter("always", pytest.PytestCacheWarning)
        yield
