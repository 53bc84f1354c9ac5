"""What the report shows, computed from a history: the view model of the page.

:func:`build_report` does all the choosing and counting (which tests are
flaky, failing, slowest; the top rows of each section; the shard lanes), so
the renderer only lays out what it is given.  It reads each test once and
computes medians only where needed, so 50,000 tests with 20 runs each take
a fraction of a second.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from collections.abc import Sequence
from statistics import median
from typing import Generic
from typing import Protocol
from typing import TypeVar

import attrs

from pytest_crosscache.history.flaky import FLAKY
from pytest_crosscache.history.flaky import NEW
from pytest_crosscache.history.model import FAILING
from pytest_crosscache.history.model import History
from pytest_crosscache.history.model import Run
from pytest_crosscache.history.model import TestHistory

#: Rows each section shows unless told otherwise; the others are counted.
DEFAULT_TOP = 50
#: Runs shown as columns of the outcome strips and bars of the suite chart.
DEFAULT_COLUMNS = 30
#: Jobs of the shard plan unless told otherwise.
DEFAULT_SHARDS = 4
#: At most this many tests of a shard lane are drawn one by one; the
#: shorter ones after them share one block (50,000 boxes help nobody).
LANE_SEGMENTS = 40
#: ...and only those taking at least this share of the longest lane.
MIN_SEGMENT = 1 / 200
#: A trend is worth a word when the recent median differs by this factor...
TREND_FACTOR = 1.2
#: ...and by this many seconds.
TREND_SECONDS = 0.1


class Verdict(Protocol):
    """What the report reads of a test's flaky verdict.

    :class:`pytest_crosscache.history.flaky.FlakyVerdict` has these fields.
    """

    @property
    def status(self) -> str: ...

    @property
    def evidence(self) -> str: ...

    @property
    def flips(self) -> int: ...

    @property
    def failures(self) -> int: ...

    @property
    def runs(self) -> int: ...


@attrs.frozen
class Cell:
    """A test's outcome in one run of the strip."""

    #: One of the outcome letters of :mod:`pytest_crosscache.history.model`.
    outcome: str
    #: Seconds the test took in that run.
    seconds: float


#: One entry per column run, oldest first; ``None`` where the test did not run.
Strip = tuple[Cell | None, ...]


@attrs.frozen
class FlakyRow:
    """A test the flaky analysis calls flaky."""

    nodeid: str
    strip: Strip
    flips: int
    failures: int
    runs: int
    evidence: str

    @property
    def flip_rate(self) -> float:
        """Outcome changes per chance to change: 1.0 flips at every run."""
        return self.flips / (self.runs - 1) if self.runs > 1 else 0.0


@attrs.frozen
class FailingRow:
    """A test whose last recorded outcome is a failure or an error."""

    nodeid: str
    strip: Strip
    #: The first run of the current streak of failures, if it is still known.
    since: Run | None
    #: Recorded runs in the current streak.
    streak: int
    #: Whether the test failed in every recorded run (it may have failed
    #: before the oldest one, too).
    always: bool


@attrs.frozen
class SlowRow:
    """One of the slowest tests, by median duration."""

    nodeid: str
    median: float
    #: Recorded durations, oldest first.
    durations: tuple[float, ...]
    #: Medians of the older and the newer half of the durations; ``None``
    #: with fewer than four durations.
    older: float | None = None
    newer: float | None = None

    @property
    def trend(self) -> float | None:
        """The newer median over the older, if both are known and not zero."""
        if self.older is None or self.newer is None or self.older <= 0:
            return None
        return self.newer / self.older

    @property
    def changed(self) -> bool:
        """Whether the newer median differs from the older by a margin worth a word.

        Both :data:`TREND_FACTOR` and :data:`TREND_SECONDS`: a test of a few
        milliseconds doubles its time by noise alone.
        """
        trend = self.trend
        if trend is None or self.older is None or self.newer is None:
            return False
        far = trend >= TREND_FACTOR or trend <= 1 / TREND_FACTOR
        return far and abs(self.newer - self.older) >= TREND_SECONDS


_Row = TypeVar("_Row")


@attrs.frozen
class Section(Generic[_Row]):
    """The top rows of a section, and how many there are in all."""

    rows: tuple[_Row, ...]
    total: int

    @property
    def hidden(self) -> int:
        """Rows left out of the page."""
        return self.total - len(self.rows)


@attrs.frozen
class Segment:
    """One test drawn on a shard lane; several tests when ``tests > 1``."""

    label: str
    start: float
    seconds: float
    tests: int = 1


@attrs.frozen
class Lane:
    """One job of the shard plan."""

    tests: int
    seconds: float
    segments: tuple[Segment, ...]


@attrs.frozen
class PlanView:
    """The shard plan as lanes of a timeline."""

    lanes: tuple[Lane, ...]
    #: Tests without a recorded duration: the plan counts them as instant.
    unknown: int
    #: No split into this many jobs can finish sooner: the longest test,
    #: or the total time over the number of jobs.
    lower_bound: float = 0.0

    @property
    def longest(self) -> float:
        """Seconds of the slowest job: the wall time of the sharded run."""
        return max((lane.seconds for lane in self.lanes), default=0.0)

    @property
    def balance(self) -> float:
        """Mean job time over the longest: 1.0 is a perfect split."""
        if not self.lanes or self.longest <= 0:
            return 1.0
        mean = sum(lane.seconds for lane in self.lanes) / len(self.lanes)
        return mean / self.longest


@attrs.frozen
class Summary:
    """The numbers at the top of the page."""

    tests: int
    runs: int
    failing: int
    #: ``None`` when no flaky analysis was given.
    flaky: int | None
    new: int | None
    slowest: SlowRow | None
    last_run: Run | None


@attrs.frozen
class Report:
    """Everything the page shows."""

    title: str
    #: Where the history was read from (``Backend.describe()``).
    source: str
    #: When the report was made, in seconds since the epoch.
    generated: float
    #: The runs the strips and the suite chart show, oldest first.
    runs: tuple[Run, ...]
    summary: Summary
    #: ``None`` when no flaky analysis was given.
    flaky: Section[FlakyRow] | None
    failing: Section[FailingRow]
    slowest: Section[SlowRow]
    plan: PlanView | None


def build_report(
    history: History,
    *,
    verdicts: Mapping[str, Verdict] | None = None,
    jobs: Sequence[Sequence[str]] | None = None,
    durations: Mapping[str, float] | None = None,
    title: str = "Test history",
    source: str = "",
    generated: float = 0.0,
    top: int = DEFAULT_TOP,
    columns: int = DEFAULT_COLUMNS,
) -> Report:
    """The view model of the report on ``history``.

    :param verdicts: the flaky analysis, by node id; without it the page has
        no flaky section and counts no flaky or new tests.
    :param jobs: a shard plan, as the node ids of each job; the lanes are
        drawn with ``durations``.
    :param durations: each test's typical duration, such as the medians
        the history store keeps; computed from the history when not given.
    :param top: rows shown per section; the rest are only counted.
    :param columns: the most recent runs shown in strips and charts.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, not {columns}")
    runs = sorted(history.runs.values(), key=lambda run: (run.started, run.id))
    shown_runs = tuple(runs[-columns:])
    column_of = {run.id: index for index, run in enumerate(shown_runs)}

    def strip(test: TestHistory) -> Strip:
        return _strip(test, column_of, len(shown_runs))

    tests = history.tests.values()
    failing = [test for test in tests if test.outcomes[-1:] in FAILING]
    failing_rows = [_failing_row(test, history.runs, strip(test)) for test in failing]
    # Newest breakages first: they are the ones someone can still remember.
    failing_rows.sort(
        key=lambda row: (-(row.since.started if row.since else 0.0), row.nodeid)
    )

    flaky_section: Section[FlakyRow] | None = None
    flaky_count = new_count = None
    if verdicts is not None:
        flaky_tests = [
            (test, verdicts[test.nodeid])
            for test in tests
            if test.nodeid in verdicts and verdicts[test.nodeid].status == FLAKY
        ]
        flaky_rows = [
            FlakyRow(
                test.nodeid,
                strip(test),
                verdict.flips,
                verdict.failures,
                verdict.runs,
                verdict.evidence,
            )
            for test, verdict in flaky_tests
        ]
        flaky_rows.sort(key=lambda row: (-row.flip_rate, -row.failures, row.nodeid))
        flaky_section = Section(tuple(flaky_rows[:top]), len(flaky_rows))
        flaky_count = len(flaky_rows)
        new_count = sum(
            1
            for nodeid, verdict in verdicts.items()
            if verdict.status == NEW and nodeid in history.tests
        )

    if durations is None:
        durations = {
            test.nodeid: _median(test.durations) for test in tests if test.durations
        }
    timed = [
        (test, seconds)
        for test in tests
        if test.durations and (seconds := durations.get(test.nodeid)) is not None
    ]
    slowest = heapq.nlargest(top, timed, key=lambda pair: (pair[1], pair[0].nodeid))
    slow_rows = tuple(
        SlowRow(test.nodeid, seconds, test.durations, *_halves(test.durations))
        for test, seconds in slowest
    )

    plan = None
    if jobs is not None:
        plan = build_plan(jobs, durations)

    return Report(
        title=title,
        source=source,
        generated=generated,
        runs=shown_runs,
        summary=Summary(
            tests=len(history.tests),
            runs=len(history.runs),
            failing=len(failing_rows),
            flaky=flaky_count,
            new=new_count,
            slowest=slow_rows[0] if slow_rows else None,
            last_run=runs[-1] if runs else None,
        ),
        flaky=flaky_section,
        failing=Section(tuple(failing_rows[:top]), len(failing_rows)),
        slowest=Section(slow_rows, len(timed)),
        plan=plan,
    )


def _median(values: Sequence[float]) -> float:
    return float(median(values))


def _strip(test: TestHistory, column_of: Mapping[str, int], width: int) -> Strip:
    cells: list[Cell | None] = [None] * width
    for outcome, seconds, run_id in zip(
        test.outcomes, test.durations, test.run_ids, strict=False
    ):
        column = column_of.get(run_id)
        if column is not None:
            cells[column] = Cell(outcome, seconds)
    return tuple(cells)


def _failing_row(
    test: TestHistory, runs: Mapping[str, Run], strip: Strip
) -> FailingRow:
    outcomes = test.outcomes
    first = len(outcomes) - 1
    while first > 0 and outcomes[first - 1] in FAILING:
        first -= 1
    since = runs.get(test.run_ids[first]) if first < len(test.run_ids) else None
    return FailingRow(
        nodeid=test.nodeid,
        strip=strip,
        since=since,
        streak=len(outcomes) - first,
        always=first == 0,
    )


def _halves(durations: Sequence[float]) -> tuple[float | None, float | None]:
    if len(durations) < 4:
        return None, None
    half = len(durations) // 2
    return _median(durations[:half]), _median(durations[-half:])


def build_plan(
    jobs: Sequence[Sequence[str]],
    durations: Mapping[str, float],
    segments: int = LANE_SEGMENTS,
) -> PlanView:
    """Lanes of a timeline for ``jobs``, each test taking its recorded duration.

    Each lane draws its longest tests one by one, longest first (the order
    a slowest-first run would take), as long as they are wide enough to
    see, and the rest as one block.
    """
    unknown = 0
    timed_jobs = []
    for job in jobs:
        known = []
        for nodeid in job:
            seconds = durations.get(nodeid)
            if seconds is None:
                unknown += 1
            else:
                known.append((seconds, nodeid))
        timed_jobs.append((len(job), known, sum(seconds for seconds, _ in known)))
    longest = max((total for _, _, total in timed_jobs), default=0.0)
    everything = sum(total for _, _, total in timed_jobs)
    longest_test = max(
        (seconds for _, known, _ in timed_jobs for seconds, _ in known), default=0.0
    )
    bound = max(longest_test, everything / len(timed_jobs)) if timed_jobs else 0.0
    lanes = []
    for tests, known, total in timed_jobs:
        drawn = []
        start = 0.0
        for seconds, nodeid in heapq.nlargest(segments, known):
            if seconds < longest * MIN_SEGMENT:
                break
            drawn.append(Segment(nodeid, start, seconds))
            start += seconds
        if tests > len(drawn):
            drawn.append(
                Segment("", start, max(total - start, 0.0), tests - len(drawn))
            )
        lanes.append(Lane(tests=tests, seconds=total, segments=tuple(drawn)))
    return PlanView(tuple(lanes), unknown, bound)
