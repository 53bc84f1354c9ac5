"""Longest-processing-time-first partitioning, deterministic to the last tie.

The classic greedy rule (Graham, 1969): take the items longest first and
give each to the bin with the least load so far.  Its makespan is at most
4/3 of the optimum, and far closer when most items are small compared to a
bin's share, as in test suites.  Ties are broken by key (items) and by bin
number (bins), so every machine computes the same partition from the same
numbers: shards of one CI pipeline rely on that.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def lpt(weights: Sequence[float], keys: Sequence[str], bins: int) -> list[int]:
    """The bin (``0 .. bins-1``) of each item, aligned with ``weights``.

    :param keys: one string per item, breaking ties between equal weights
        (node ids: unique and the same on every machine).
    :raises ValueError: if ``bins`` is not positive.
    """
    if bins < 1:
        raise ValueError(f"cannot partition into {bins} bins")
    # Two stable sorts with C-level keys: by key, then longest first (ties
    # stay in key order).  Several times faster than one sort on tuples.
    order = sorted(range(len(weights)), key=keys.__getitem__)
    order.sort(key=weights.__getitem__, reverse=True)
    loads: list[tuple[float, int]] = [(0.0, b) for b in range(bins)]
    assignment = [0] * len(weights)
    replace = heapq.heapreplace
    for i in order:
        load, b = loads[0]
        assignment[i] = b
        replace(loads, (load + weights[i], b))
    return assignment


def loads_of(
    weights: Sequence[float], assignment: Sequence[int], bins: int
) -> list[float]:
    """The summed weight of each bin."""
    loads = [0.0] * bins
    for weight, b in zip(weights, assignment, strict=True):
        loads[b] += weight
    return loads


def lower_bound(weights: Sequence[float], bins: int) -> float:
    """No partition into ``bins`` can finish sooner: ``max(longest, total / bins)``."""
    if not weights:
        return 0.0
    return max(max(weights), sum(weights) / bins)
