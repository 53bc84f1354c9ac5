"""Small helpers about pytest-xdist roles."""

from __future__ import annotations

import pytest


def is_xdist_worker(config: pytest.Config) -> bool:
    """Workers only read shared state; the controller records it."""
    return hasattr(config, "workerinput")
