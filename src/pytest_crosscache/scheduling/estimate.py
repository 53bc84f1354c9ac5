"""How long each test is expected to take: its recorded duration, else an estimate.

A test without history counts as the median of the recorded tests of its
file (a new test usually resembles its neighbours), else as the median of
the whole suite, else, with nothing recorded at all, as one second, so that
plans still balance by count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from statistics import median

import attrs

#: The duration of every test when nothing at all is recorded.
UNKNOWN_SUITE_SECONDS = 1.0


def file_of(nodeid: str) -> str:
    """The file part of a node id (everything before the first ``::``)."""
    return nodeid.split("::", 1)[0]


def without_group(nodeid: str) -> str:
    """``nodeid`` without the ``@group`` suffix of xdist's ``--dist loadgroup``."""
    at = nodeid.rfind("@")
    # A "@" inside parameter ids ("test[a@b]") is part of the name.
    if at > nodeid.rfind("]"):
        return nodeid[:at]
    return nodeid


@attrs.frozen
class Estimates:
    """Expected seconds of each test, aligned with the node ids asked about."""

    #: Seconds per test, in the order of the node ids given.
    seconds: tuple[float, ...]
    #: How many of them were recorded (the rest are estimates).
    known: int

    @property
    def total(self) -> float:
        return math.fsum(self.seconds)


def usable(seconds: object) -> bool:
    """Whether a stored duration can be trusted: a finite number, not negative."""
    return (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and seconds >= 0
    )


def estimate(
    nodeids: Sequence[str],
    recorded: Mapping[str, float],
    *,
    normalize: Callable[[str], str] | None = None,
) -> Estimates:
    """Expected seconds of ``nodeids`` from the ``recorded`` durations.

    :param normalize: maps a collected node id to the id its history is
        recorded under (e.g. :func:`without_group`), tried when the id
        itself has no record.
    """
    seconds: list[float | None] = []
    known = 0
    for nodeid in nodeids:
        value = recorded.get(nodeid)
        if value is None and normalize is not None:
            value = recorded.get(normalize(nodeid))
        if value is not None and usable(value):
            seconds.append(float(value))
            known += 1
        else:
            seconds.append(None)
    if known == len(seconds):
        return Estimates(tuple(seconds), known)  # type: ignore[arg-type]
    fallback = _Fallback(recorded)
    filled = tuple(
        value
        if value is not None
        else fallback.of(file_of(normalize(nodeid) if normalize else nodeid))
        for nodeid, value in zip(nodeids, seconds, strict=True)
    )
    return Estimates(filled, known)


class _Fallback:
    """Medians by file and of the suite, computed only once one is needed."""

    def __init__(self, recorded: Mapping[str, float]) -> None:
        self._recorded = recorded
        self._by_file: dict[str, list[float]] | None = None
        self._medians: dict[str, float] = {}
        self._suite: float | None = None

    def of(self, file: str) -> float:
        found = self._medians.get(file)
        if found is not None:
            return found
        if self._by_file is None:
            self._by_file = {}
            for nodeid, value in self._recorded.items():
                if usable(value):
                    self._by_file.setdefault(file_of(nodeid), []).append(float(value))
        values = self._by_file.get(file)
        result = median(values) if values else self._of_suite()
        self._medians[file] = result
        return result

    def _of_suite(self) -> float:
        if self._suite is None:
            assert self._by_file is not None
            every = [value for values in self._by_file.values() for value in values]
            self._suite = median(every) if every else UNKNOWN_SUITE_SECONDS
        return self._suite
