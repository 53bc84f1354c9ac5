"""Small helpers about pytest-xdist roles."""

from __future__ import annotations

import pytest


def is_xdist_worker(config: pytest.Config) -> bool:
    """Workers only read shared state; the controller records it."""
    return hasattr(config, "workerinput")


def has_xdist(config: pytest.Config) -> bool:
    """Whether pytest-xdist is loaded, also as ``-p xdist.plugin``.

    Told by its hooks rather than by its plugin name, which depends on how
    it was loaded (``xdist.plugin`` by entry point, the module's name by
    ``-p``).
    """
    return hasattr(config.hook, "pytest_xdist_node_collection_finished")
