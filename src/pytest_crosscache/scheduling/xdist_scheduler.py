"""The xdist scheduler of ``--sf``: longest first, short tests filling the gaps.

It implements pytest-xdist's ``Scheduling`` protocol.  When every worker has
collected, the tests are cut into units (:mod:`.units`) and planned onto
the workers longest first (LPT).  Each worker is then handed its plan one
unit at a time, never more than it needs to keep running: an xdist worker
runs a test only once it knows the next one, so it always holds its
current test and the one after.  A worker whose plan runs out takes units
nobody was sent yet from the worker with the most planned work left, so
when durations differ from the record the short tests still fill the gaps
at the end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import pytest
from xdist.report import report_collection_diff
from xdist.workermanage import WorkerController
from xdist.workermanage import parse_tx_spec_config

from pytest_crosscache.scheduling.estimate import estimate
from pytest_crosscache.scheduling.estimate import without_group
from pytest_crosscache.scheduling.units import SCOPES
from pytest_crosscache.scheduling.units import Unit
from pytest_crosscache.scheduling.units import distribute
from pytest_crosscache.scheduling.units import per_test_units
from pytest_crosscache.scheduling.units import scope_units

#: The ``--dist`` modes this scheduler serves (per test, or per scope).
SUPPORTED_DIST = frozenset(("load", "worksteal", *SCOPES))
#: An xdist worker runs a test once it holds the next one (or is told to stop).
RUNNING = 2
#: Expected seconds a worker holds beyond the test it runs, so that it does
#: not wait for the controller between short tests (on a busy machine a
#: round trip can take tens of milliseconds).
AHEAD = 0.1


class SlowFirstScheduling:
    """Longest-first scheduling for ``-n N --sf``."""

    def __init__(
        self,
        config: pytest.Config,
        log: Any,
        *,
        recorded: Mapping[str, float],
        rank: Callable[[str], int],
        dist: str,
    ) -> None:
        self.config = config
        self.numnodes = len(parse_tx_spec_config(config))
        self.log = log.slowfirstsched
        self.recorded = recorded
        self.rank = rank
        self.dist = dist
        self.node2collection: dict[WorkerController, list[str]] = {}
        self.node2pending: dict[WorkerController, list[int]] = {}
        #: Units planned for each worker and not sent yet, in running order.
        self.plans: dict[WorkerController, deque[Unit]] = {}
        #: Expected seconds of each worker's unsent units.
        self.planned: dict[WorkerController, float] = {}
        #: Units of no worker (a crashed worker's, tests given back): first served.
        self.spare: deque[Unit] = deque()
        self.collection: list[str] | None = None
        self.seconds: tuple[float, ...] = ()

    # --- the Scheduling protocol -------------------------------------------

    @property
    def nodes(self) -> list[WorkerController]:
        return list(self.node2pending)

    @property
    def collection_is_completed(self) -> bool:
        return len(self.node2collection) >= self.numnodes

    @property
    def tests_finished(self) -> bool:
        if not self.collection_is_completed or self._unsent():
            return False
        return all(len(pending) < RUNNING for pending in self.node2pending.values())

    @property
    def has_pending(self) -> bool:
        return self._unsent() or any(self.node2pending.values())

    def add_node(self, node: WorkerController) -> None:
        assert node not in self.node2pending
        self.node2pending[node] = []
        self.plans[node] = deque()
        self.planned[node] = 0.0

    def add_node_collection(
        self, node: WorkerController, collection: Sequence[str]
    ) -> None:
        assert node in self.node2pending
        # A worker started later, replacing one that died.
        if self.collection is not None and list(collection) != self.collection:
            other = next(iter(self.node2collection))
            self.log(
                report_collection_diff(
                    self.collection, collection, other.gateway.id, node.gateway.id
                )
            )
            return
        self.node2collection[node] = list(collection)

    def mark_test_complete(
        self, node: WorkerController, item_index: int, duration: float = 0
    ) -> None:
        self.node2pending[node].remove(item_index)
        self._refill(node)

    def mark_test_pending(self, item: str) -> None:
        assert self.collection is not None
        index = self.collection.index(item)
        self.spare.appendleft(Unit((index,), self.seconds[index], 0))
        for node in self.nodes:
            self._refill(node)

    def remove_pending_tests_from_node(
        self, node: WorkerController, indices: Sequence[int]
    ) -> None:
        # Only answers to "steal" commands come here; this scheduler sends none.
        raise NotImplementedError()

    def remove_node(self, node: WorkerController) -> str | None:
        pending = self.node2pending.pop(node)
        self.spare.extend(self.plans.pop(node, ()))
        self.planned.pop(node, None)
        crashed = None
        if pending:
            assert self.collection is not None
            crashed = self.collection[pending[0]]
            self.spare.extend(Unit((i,), self.seconds[i], 0) for i in pending[1:])
        for other in self.nodes:
            self._refill(other)
        return crashed

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            # Workers added since the start get work too.
            for node in self.nodes:
                self._refill(node)
            return
        if not self._same_collections():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = next(iter(self.node2collection.values()))
        if not self.collection:
            return
        self._plan(self.collection)
        for node in self.nodes:
            self._refill(node)

    # --- planning and handing out --------------------------------------------

    def _plan(self, collection: list[str]) -> None:
        normalize = without_group if self.dist == "loadgroup" else None
        estimates = estimate(collection, self.recorded, normalize=normalize)
        self.seconds = estimates.seconds
        ranks = [self.rank(normalize(i) if normalize else i) for i in collection]
        nodes = self.nodes
        scope_of = SCOPES.get(self.dist)
        if scope_of is None:
            units = per_test_units(collection, self.seconds, ranks, len(nodes))
        else:
            units = scope_units(collection, self.seconds, ranks, scope_of)
        for node, plan in zip(nodes, distribute(units, len(nodes)), strict=True):
            self.plans[node] = deque(plan)
            self.planned[node] = sum(unit.seconds for unit in plan)
        self.log(f"planned {len(units)} units of {len(collection)} tests")

    def _unsent(self) -> bool:
        return bool(self.spare) or any(self.plans.values())

    def _refill(self, node: WorkerController) -> None:
        """Keep ``node`` busy: two tests, and :data:`AHEAD` beyond the first."""
        if node.shutting_down or self.collection is None:
            return
        pending = self.node2pending[node]
        while len(pending) < RUNNING or self._ahead(pending) < AHEAD:
            unit = self._next_unit(node)
            if unit is None:
                if len(pending) < RUNNING:
                    # Nothing left for it: let it run its last test and stop.
                    node.shutdown()
                return
            pending.extend(unit.indices)
            node.send_runtest_some(list(unit.indices))

    def _ahead(self, pending: list[int]) -> float:
        # The first pending test is the one running (or about to).
        seconds = self.seconds
        return sum(seconds[index] for index in pending[1:])

    def _next_unit(self, node: WorkerController) -> Unit | None:
        if self.spare:
            return self.spare.popleft()
        own = self.plans[node]
        if own:
            unit = own.popleft()
            self.planned[node] -= unit.seconds
            return unit
        # Take over planned work of the worker with the most of it left.
        victim = max(
            (other for other in self.plans if self.plans[other]),
            key=lambda other: self.planned[other],
            default=None,
        )
        if victim is None:
            return None
        theirs = self.plans[victim]
        # A unit handed to a worker that holds a test runs after it: then
        # take the victim's smallest, so that nothing long waits behind it.
        # An idle worker starts it now, sooner than the victim would: its next.
        unit = theirs.pop() if self.node2pending[node] else theirs.popleft()
        self.planned[victim] -= unit.seconds
        self.log(f"{node.gateway.id} takes {unit.indices} from {victim.gateway.id}")
        return unit

    def _same_collections(self) -> bool:
        (first, collection), *others = self.node2collection.items()
        same = True
        for node, other in others:
            diff = report_collection_diff(
                collection, other, first.gateway.id, node.gateway.id
            )
            if diff:
                same = False
                self.log(diff)
                self.config.hook.pytest_collectreport(
                    report=pytest.CollectReport(
                        nodeid=node.gateway.id,
                        outcome="failed",
                        longrepr=diff,
                        result=[],
                    )
                )
        return same
