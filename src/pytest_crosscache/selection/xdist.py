"""The xdist controller's part in recording known tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_crosscache.selection.newfirst import NewFirstPlugin


class XdistNodeIds:
    """On the xdist controller, learn the collected node ids from the workers.

    The controller never collects, so without this a distributed session
    would not add new tests to ``cache/nodeids``.
    """

    def __init__(self, recorder: NewFirstPlugin) -> None:
        self.recorder = recorder

    def pytest_xdist_node_collection_finished(
        self, node: object, ids: list[str]
    ) -> None:
        self.recorder.record(ids)
