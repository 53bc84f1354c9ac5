"""Small helpers about pytest-xdist roles."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_crosscache.newfirst import NodeIdRecorder


def is_xdist_worker(config: pytest.Config) -> bool:
    """Workers only read shared state; the controller records it."""
    return hasattr(config, "workerinput")


class XdistNodeIds:
    """On the xdist controller, learn the collected node ids from the workers.

    The controller never collects, so without this a distributed session
    would not add new tests to ``cache/nodeids``.
    """

    def __init__(self, recorder: NodeIdRecorder) -> None:
        self.recorder = recorder

    def pytest_xdist_node_collection_finished(
        self, node: object, ids: list[str]
    ) -> None:
        self.recorder.record(ids)
