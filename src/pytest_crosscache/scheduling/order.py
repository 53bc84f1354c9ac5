"""Slowest-first order that keeps fixture scopes together (``--sf`` without xdist).

Each test comes with a path of the scopes it belongs to, outermost first:
its ``--ff``/``--nf`` group (the rank), then its directories, module and
class, with the parameters of higher-scoped fixtures beside the scope they
belong to.  Siblings are ordered by their total expected time, longest
first, and the tests of one innermost scope by their own time; a scope's
tests are never split apart, so module-, class- and package-scoped fixtures
are set up as often as in pytest's own order: the order changes, not how
often set-up runs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from collections.abc import Sequence


def slowest_first(
    paths: Sequence[tuple[Hashable, ...]],
    seconds: Sequence[float],
    ranks: Sequence[int],
) -> list[int]:
    """The indices of the tests in slowest-first order.

    :param paths: each test's scopes, outermost first (the rank excluded).
    :param seconds: each test's expected duration.
    :param ranks: each test's group; lower ranks come first, whatever their times.
    Ties keep the original order.
    """
    by_rank: dict[int, list[int]] = {}
    for index, rank in enumerate(ranks):
        by_rank.setdefault(rank, []).append(index)
    result: list[int] = []
    for rank in sorted(by_rank):
        result.extend(_order(by_rank[rank], 0, paths, seconds)[0])
    return result


def _order(
    members: list[int],
    depth: int,
    paths: Sequence[tuple[Hashable, ...]],
    seconds: Sequence[float],
) -> tuple[list[int], float]:
    """Order ``members`` (sharing ``paths[i][:depth]``); return it and its total."""
    leaves: list[int] = []
    groups: dict[Hashable, list[int]] = {}
    for index in members:
        path = paths[index]
        if len(path) > depth:
            groups.setdefault(path[depth], []).append(index)
        else:
            leaves.append(index)
    # (total, first index, order): first index keeps ties in original order.
    blocks: list[tuple[float, int, list[int]]] = [
        (seconds[index], index, [index]) for index in leaves
    ]
    for group in groups.values():
        ordered, total = _order(group, depth + 1, paths, seconds)
        blocks.append((total, group[0], ordered))
    blocks.sort(key=lambda block: (-block[0], block[1]))
    result = [index for block in blocks for index in block[2]]
    return result, math.fsum(block[0] for block in blocks)
