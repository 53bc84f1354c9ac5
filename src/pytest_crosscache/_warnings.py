"""One place that turns cache problems into ``pytest.PytestCacheWarning``."""

from __future__ import annotations

import warnings

import pytest


def warn_cache(message: str) -> None:
    """Issue a :class:`pytest.PytestCacheWarning`; never raises by itself."""
    warnings.warn(pytest.PytestCacheWarning(message), stacklevel=3)
