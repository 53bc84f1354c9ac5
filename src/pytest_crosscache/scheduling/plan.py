"""Shard plans: which shard runs which test, stored so every shard agrees.

A plan is built once per pipeline from the tests the first shard collected
and the durations recorded then, and stored; the other shards read it
instead of planning again from durations that may have changed meanwhile.
A test the plan does not know (collected by a later shard only) goes to the
shard chosen by :func:`stable_shard`, which every machine computes alike, so
each test still runs in exactly one shard.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import attrs

from pytest_crosscache.scheduling.lpt import loads_of
from pytest_crosscache.scheduling.lpt import lower_bound
from pytest_crosscache.scheduling.lpt import lpt

PLAN_VERSION = 1


class InvalidPlan(ValueError):
    """A stored plan does not have the expected shape."""


def stable_shard(nodeid: str, shards: int) -> int:
    """The shard (0-based) of a test missing from the plan: a hash of its id.

    Not Python's :func:`hash`, which differs between processes.
    """
    digest = hashlib.blake2b(
        nodeid.encode("utf-8", "surrogateescape"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % shards


@attrs.frozen
class ShardPlan:
    """The tests of each shard, as planned."""

    #: How many shards.
    shards: int
    #: Node ids per shard; index 0 is shard 1.
    tests: tuple[tuple[str, ...], ...]
    #: The expected seconds of each shard when the plan was made.
    expected: tuple[float, ...]
    #: When the plan was made (seconds since the epoch).
    created: float
    # Node id -> shard, filled on first lookup.
    _index: dict[str, int] = attrs.field(init=False, repr=False, eq=False, factory=dict)

    @classmethod
    def build(
        cls,
        nodeids: Sequence[str],
        seconds: Sequence[float],
        shards: int,
        *,
        created: float = 0.0,
    ) -> ShardPlan:
        """Partition ``nodeids`` (with their expected ``seconds``) by LPT."""
        assignment = lpt(seconds, nodeids, shards)
        tests: list[list[str]] = [[] for _ in range(shards)]
        for nodeid, shard in zip(nodeids, assignment, strict=True):
            tests[shard].append(nodeid)
        loads = loads_of(seconds, assignment, shards)
        return cls(
            shards=shards,
            tests=tuple(tuple(ids) for ids in tests),
            expected=tuple(loads),
            created=created,
        )

    def shard_of(self, nodeid: str) -> int:
        """The shard (0-based) that runs ``nodeid``."""
        index = self._index
        if not index:
            for shard, nodeids in enumerate(self.tests):
                for planned in nodeids:
                    index[planned] = shard
        found = index.get(nodeid)
        return stable_shard(nodeid, self.shards) if found is None else found

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "shards": self.shards,
            "created": self.created,
            "expected": list(self.expected),
            "tests": [list(ids) for ids in self.tests],
        }

    @classmethod
    def from_json(cls, data: object) -> ShardPlan:
        """Read a stored plan; :class:`InvalidPlan` says what is wrong with it."""
        if not isinstance(data, dict):
            raise InvalidPlan(f"expected a mapping, found {type(data).__name__}")
        if data.get("version") != PLAN_VERSION:
            raise InvalidPlan(f"unknown plan version {data.get('version')!r}")
        shards = data.get("shards")
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise InvalidPlan(f"shards must be a positive integer, not {shards!r}")
        tests = data.get("tests")
        if (
            not isinstance(tests, list)
            or len(tests) != shards
            or not all(
                isinstance(ids, list) and all(isinstance(i, str) for i in ids)
                for ids in tests
            )
        ):
            raise InvalidPlan(f"tests must be {shards} lists of node ids")
        expected = data.get("expected")
        if (
            not isinstance(expected, list)
            or len(expected) != shards
            or not all(_is_seconds(value) for value in expected)
        ):
            raise InvalidPlan(f"expected must be {shards} numbers of seconds")
        created = data.get("created")
        if not _is_seconds(created):
            raise InvalidPlan(f"created must be a time, not {created!r}")
        return cls(
            shards=shards,
            tests=tuple(tuple(ids) for ids in tests),
            expected=tuple(float(value) for value in expected),
            created=float(created),  # type: ignore[arg-type]
        )


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


@attrs.frozen
class Forecast:
    """What a split into shards (or workers) is expected to give."""

    #: Expected seconds per shard.
    loads: tuple[float, ...]
    #: Tests per shard.
    counts: tuple[int, ...]
    #: ``max(longest test, total / shards)``: no split finishes sooner.
    lower_bound: float
    #: The longest tests, longest first: (node id, seconds).
    longest: tuple[tuple[str, float], ...]
    #: Sum of all expected seconds.
    total: float

    @property
    def makespan(self) -> float:
        """The expected time of the slowest shard."""
        return max(self.loads, default=0.0)


def forecast(durations: Mapping[str, float], shards: int, *, top: int = 10) -> Forecast:
    """Plan ``durations`` into ``shards`` and say how well that splits."""
    nodeids = sorted(durations)
    seconds = [float(durations[nodeid]) for nodeid in nodeids]
    assignment = lpt(seconds, nodeids, shards)
    counts = [0] * shards
    for shard in assignment:
        counts[shard] += 1
    longest = sorted(zip(nodeids, seconds, strict=True), key=lambda p: (-p[1], p[0]))
    return Forecast(
        loads=tuple(loads_of(seconds, assignment, shards)),
        counts=tuple(counts),
        lower_bound=lower_bound(seconds, shards),
        longest=tuple(longest[:top]),
        total=math.fsum(seconds),
    )
