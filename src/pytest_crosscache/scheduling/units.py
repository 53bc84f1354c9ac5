"""Work units for the slowest-first xdist scheduler, and who gets which.

A unit is what the scheduler hands a worker at once.  Per test (``--dist
load``): every long test is a unit of its own, so the long ones start at
once on different workers; the short ones go in runs of neighbours from the
same file, in collection order, so module and class fixtures are set up
about as often as under xdist's own scheduling.  Per scope (``loadscope``,
``loadfile``, ``loadgroup``): one unit per scope, as xdist groups them.

:func:`distribute` then plans units onto workers longest first (LPT), the
groups of ``--ff``/``--nf`` (ranks) one after the other.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from collections.abc import Sequence

import attrs

from pytest_crosscache.scheduling.estimate import file_of
from pytest_crosscache.scheduling.lpt import lower_bound

#: A test longer than this share of the expected time per worker is a unit
#: of its own; shorter ones are grouped into units of at most that length.
#: It bounds how much one unit handed out late can delay the end.
SHARE = 0.02
#: ... but units are never cut finer than this many seconds: below it,
#: fewer round trips and fixture set-ups matter more than balance.
MIN_UNIT_SECONDS = 0.02


@attrs.frozen
class Unit:
    """Tests handed to one worker together."""

    #: Indices into the collection, in the order to run them.
    indices: tuple[int, ...]
    #: Expected seconds of all of them.
    seconds: float
    #: Group of ``--ff``/``--nf``: lower ranks run first.
    rank: int
    #: Planned on its own, longest first (a long test, a scope); else part of
    #: a file's run of short tests, planned in collection order.
    alone: bool = True


def per_test_units(
    nodeids: Sequence[str],
    seconds: Sequence[float],
    ranks: Sequence[int],
    workers: int,
) -> list[Unit]:
    """Units for ``--dist load``: long tests alone, short ones in runs by file."""
    budget = max(SHARE * lower_bound(seconds, max(workers, 1)), MIN_UNIT_SECONDS)
    units: list[Unit] = []
    run: list[int] = []
    run_seconds = 0.0
    run_key: tuple[int, str] | None = None

    def close() -> None:
        nonlocal run, run_seconds
        if run:
            units.append(Unit(tuple(run), run_seconds, ranks[run[0]], alone=False))
        run = []
        run_seconds = 0.0

    for index, nodeid in enumerate(nodeids):
        length = seconds[index]
        if length >= budget:
            units.append(Unit((index,), length, ranks[index]))
            continue
        key = (ranks[index], file_of(nodeid))
        if key != run_key or run_seconds + length > budget:
            close()
            run_key = key
        run.append(index)
        run_seconds += length
    close()
    return units


def scope_units(
    nodeids: Sequence[str],
    seconds: Sequence[float],
    ranks: Sequence[int],
    scope_of: Callable[[str], str],
) -> list[Unit]:
    """One unit per scope, its tests in collection order, ranked by its first."""
    members: dict[str, list[int]] = {}
    for index, nodeid in enumerate(nodeids):
        members.setdefault(scope_of(nodeid), []).append(index)
    return [
        Unit(
            tuple(indices),
            math.fsum(seconds[i] for i in indices),
            min(ranks[i] for i in indices),
        )
        for indices in members.values()
    ]


def distribute(units: Sequence[Unit], workers: int) -> list[list[Unit]]:
    """Each worker's units in running order, rank by rank.

    Units planned alone go longest first to the least loaded worker (LPT).
    The runs of short tests then fill each worker up to an even share, in
    collection order, so that each worker gets one stretch of neighbouring
    tests and sets up few modules.  Ties are broken by the units' first
    indices and the workers' numbers: the same numbers give the same plan.
    """
    plans: list[list[Unit]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for rank in sorted({unit.rank for unit in units}):
        ranked = [unit for unit in units if unit.rank == rank]
        heap = [(load, w) for w, load in enumerate(loads)]
        heapq.heapify(heap)
        alone = sorted(
            (u for u in ranked if u.alone), key=lambda u: (-u.seconds, u.indices[0])
        )
        for unit in alone:
            load, worker = heap[0]
            plans[worker].append(unit)
            loads[worker] = load + unit.seconds
            heapq.heapreplace(heap, (loads[worker], worker))
        runs = sorted((u for u in ranked if not u.alone), key=lambda u: u.indices[0])
        if not runs:
            continue
        share = (math.fsum(loads) + math.fsum(u.seconds for u in runs)) / workers
        # The least loaded workers take the first stretches.
        order = sorted(range(workers), key=lambda w: (loads[w], w))
        position = 0
        for unit in runs:
            while (
                position < workers - 1
                and loads[order[position]] + unit.seconds / 2 > share
            ):
                position += 1
            worker = order[position]
            plans[worker].append(unit)
            loads[worker] += unit.seconds
    return plans


# The scopes of xdist's --dist modes, by the same rules as its schedulers.


def scope_of_class(nodeid: str) -> str:
    """``--dist loadscope``: a test's class, else its module."""
    return nodeid.rsplit("::", 1)[0]


def scope_of_file(nodeid: str) -> str:
    """``--dist loadfile``: a test's file."""
    return file_of(nodeid)


def scope_of_group(nodeid: str) -> str:
    """``--dist loadgroup``: the ``xdist_group`` name, else the test alone."""
    at = nodeid.rfind("@")
    if at > nodeid.rfind("]"):
        return nodeid[at + 1 :]
    return nodeid


SCOPES: dict[str, Callable[[str], str]] = {
    "loadscope": scope_of_class,
    "loadfile": scope_of_file,
    "loadgroup": scope_of_group,
}
