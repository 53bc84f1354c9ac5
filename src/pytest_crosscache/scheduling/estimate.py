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
    found: list[object] = list(map(recorded.get, nodeids))
    if normalize is not None:
        found = [
            recorded.get(normalize(nodeid)) if value is None else value
            for nodeid, value in zip(nodeids, found, strict=True)
        ]
    inf = math.inf
    # The common case first, in one pass: finite, non-negative floats.
    seconds: list[float | None] = [
        value
        if value.__class__ is float and 0.0 <= value < inf
        else float(value)  # type: ignore[arg-type]
        if value is not None and usable(value)
        else None
        for value in found
    ]
    known = len(seconds) - seconds.count(None)
    if known == len(seconds):
        return Estimates(tuple(seconds), known)  # type: ignore[arg-type]
    # A group suffix never touches the file part: no need to normalize.
    fallback = _Fallback(
        recorded,
        {
            file_of(n)
            for n, value in zip(nodeids, seconds, strict=True)
            if value is None
        },
    )
    filled = tuple(
        value if value is not None else fallback.of(file_of(nodeid))
        for nodeid, value in zip(nodeids, seconds, strict=True)
    )
    return Estimates(filled, known)


class _Fallback:
    """Medians of the recorded durations of some files, and of the suite."""

    def __init__(self, recorded: Mapping[str, float], files: set[str]) -> None:
        by_file: dict[str, list[float]] = {file: [] for file in files}
        for nodeid, value in recorded.items():
            found = by_file.get(nodeid.partition("::")[0])
            if found is not None and usable(value):
                found.append(float(value))
        suite: float | None = None
        self._medians: dict[str, float] = {}
        for file, values in by_file.items():
            if not values and suite is None:
                inf = math.inf
                every = [
                    value
                    for value in recorded.values()
                    if value.__class__ is float and 0.0 <= value < inf
                ]
                suite = median(every) if every else UNKNOWN_SUITE_SECONDS
            self._medians[file] = median(values) if values else suite  # type: ignore[assignment]

    def of(self, file: str) -> float:
        return self._medians[file]
