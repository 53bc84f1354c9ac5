"""One place that turns cache problems into warnings.

In a pytest session they are :class:`pytest.PytestCacheWarning`; the
``crosscache`` command routes them to its own stderr (``crosscache:
warning: ...``) through :func:`reported_by`, without importing pytest.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType

# pytest is imported where it is used: the crosscache command imports this
# module without running pytest, and importing pytest would dominate its run time.

#: Modules that work on behalf of whoever called the cache.  A warning skips
#: their frames and points at that caller's line, as pytest's provider does
#: (its ``Cache.set`` warns with the line that called ``set``), so that a
#: ``filterwarnings`` entry naming the caller's module matches it.
_PLUMBING = (
    "pytest_crosscache.cache",
    "pytest_crosscache._warnings",
    "pytest_crosscache._json",
    "pytest_crosscache._keys",
    "pytest_crosscache.backends.",
    "pytest_crosscache.fs.",
)


def _is_plumbing(module: str) -> bool:
    return any(
        module == name or (name.endswith(".") and module.startswith(name))
        for name in _PLUMBING
    )


#: Who receives cache warnings instead of :mod:`warnings`, if anyone.
_reporter: ContextVar[Callable[[str], None] | None] = ContextVar(
    "crosscache_reporter", default=None
)


def warn_cache(message: str) -> None:
    """Issue a :class:`pytest.PytestCacheWarning` at the line that called the cache.

    Inside :func:`reported_by`, the message goes to its reporter instead.
    """
    report = _reporter.get()
    if report is not None:
        report(message)
        return
    import pytest

    # stacklevel 1 is this function; count the plumbing frames above it.
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _is_plumbing(frame.f_globals.get("__name__", "")):
        level += 1
        frame = frame.f_back
    warnings.warn(pytest.PytestCacheWarning(message), stacklevel=level + 1)


@contextmanager
def reported_by(report: Callable[[str], None]) -> Iterator[None]:
    """Send the cache warnings issued inside the block to ``report``."""
    token = _reporter.set(report)
    try:
        yield
    finally:
        _reporter.reset(token)


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
