"""Flaky or broken: what a test's recorded runs say about it.

A test is **flaky** when it both passed and failed on the same code with no
chance of an edit in between:

* in one session: it failed, then passed when pytest-rerunfailures ran it
  again (outcome ``R``); or
* across sessions: it passed in one CI run and failed in another, both on
  the same revision.  A run counts as CI when the ``CI`` environment
  variable was set (every major CI service sets it); CI checkouts are
  not edited between runs of one commit.

Local runs never compare with each other: the revision is the last commit,
not what is in the working tree, so a developer's edit-fail-fix loop on one
commit is *fixed*, not flaky.  Nor do runs on different revisions: broken
by one commit and repaired by the next is *fixed* too.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from pytest_crosscache.history.model import History
from pytest_crosscache.history.model import Run
from pytest_crosscache.history.model import TestHistory
from pytest_crosscache.history.outcomes import FAILING
from pytest_crosscache.history.outcomes import PASSING
from pytest_crosscache.history.outcomes import RERUN_PASSED
from pytest_crosscache.history.outcomes import SKIPPED

#: The statuses :func:`classify` gives, from the most to the least alarming.
FLAKY = "flaky"
FAILING_STATUS = "failing"
FIXED = "fixed"
PASSING_STATUS = "passing"
SKIPPED_STATUS = "skipped"
NEW = "new"
STATUSES = (FLAKY, FAILING_STATUS, FIXED, PASSING_STATUS, SKIPPED_STATUS, NEW)


@attrs.frozen
class FlakyVerdict:
    """What the recorded runs say about one test."""

    nodeid: str
    #: One of :data:`STATUSES`: ``flaky`` (passed and failed on the same
    #: code), ``failing`` (red in its newest run), ``fixed`` (failed in the
    #: window, green since), ``passing``, ``skipped`` (never ran further),
    #: ``new`` (one green run recorded).
    status: str
    #: For people, e.g. "failed 3 of the last 12 runs on commit abc1234".
    evidence: str
    #: Changes between passing and failing in the window.
    flips: int
    #: Failed or errored runs in the window.
    failures: int
    #: Runs in the window.
    runs: int


def classify(history: History) -> dict[str, FlakyVerdict]:
    """A verdict for every test of ``history``, by node id."""
    runs = history.runs
    verdicts: dict[str, FlakyVerdict] = {}
    untroubled = _untroubled
    for nodeid, test in history.tests.items():
        outcomes = test.outcomes
        if FAILING.isdisjoint(outcomes) and RERUN_PASSED not in outcomes:
            # Most tests never failed in their window: nothing to weigh.
            verdicts[nodeid] = untroubled(nodeid, outcomes)
        else:
            verdicts[nodeid] = verdict(test, runs)
    return verdicts


def _untroubled(nodeid: str, outcomes: str) -> FlakyVerdict:
    """:func:`verdict` on a test with no failure, error or rerun in its window."""
    total = len(outcomes)
    if not outcomes:
        status, evidence = NEW, "no runs recorded"
    elif outcomes.count(SKIPPED) == total:
        status, evidence = SKIPPED_STATUS, f"skipped in the last {_runs(total)}"
    elif total == 1:
        status, evidence = NEW, "one run recorded"
    else:
        status, evidence = PASSING_STATUS, f"passed the last {_runs(total)}"
    return FlakyVerdict(
        nodeid=nodeid, status=status, evidence=evidence, flips=0, failures=0, runs=total
    )


def verdict(test: TestHistory, runs: Mapping[str, Run]) -> FlakyVerdict:
    """The verdict on one test, given the runs its outcomes refer to."""
    outcomes = test.outcomes
    total = len(outcomes)
    failures = sum(1 for letter in outcomes if letter in FAILING)
    flips = _flips(outcomes)
    reruns = outcomes.count(RERUN_PASSED)
    revision, failed_there, ran_there = _flaky_revision(test, runs)

    def make(status: str, evidence: str) -> FlakyVerdict:
        return FlakyVerdict(
            nodeid=test.nodeid,
            status=status,
            evidence=evidence,
            flips=flips,
            failures=failures,
            runs=total,
        )

    if revision is not None or reruns:
        parts = []
        if revision is not None:
            parts.append(
                f"failed {failed_there} of the last {ran_there} runs on commit "
                f"{short_revision(revision)}"
            )
        if reruns:
            parts.append(
                f"passed on a rerun after failing in {reruns} of the last "
                f"{_runs(total)}"
            )
        return make(FLAKY, "; ".join(parts))
    if not outcomes:
        return make(NEW, "no runs recorded")
    last = outcomes[-1]
    if last in FAILING:
        streak = len(outcomes) - len(outcomes.rstrip("FE"))
        since = _revision_of(test, runs, total - streak)
        where = f" (since commit {short_revision(since)})" if since else ""
        return make(FAILING_STATUS, f"failed the last {_runs(streak)}{where}")
    if failures:
        return make(
            FIXED,
            f"failed {failures} of the last {_runs(total)}; passing since",
        )
    if all(letter == SKIPPED for letter in outcomes):
        return make(SKIPPED_STATUS, f"skipped in the last {_runs(total)}")
    if total == 1:
        return make(NEW, "one run recorded")
    return make(PASSING_STATUS, f"passed the last {_runs(total)}")


def _runs(count: int) -> str:
    return "run" if count == 1 else f"{count} runs"


def _flips(outcomes: str) -> int:
    flips = 0
    previous: bool | None = None
    for letter in outcomes:
        if letter in FAILING:
            red = True
        elif letter in PASSING:
            red = False
        else:
            continue
        if previous is not None and red != previous:
            flips += 1
        previous = red
    return flips


def _flaky_revision(
    test: TestHistory, runs: Mapping[str, Run]
) -> tuple[str | None, int, int]:
    """The revision on which CI runs both passed and failed, with (failed, ran).

    The one with most failures, the newest on a tie; ``(None, 0, 0)`` if none.
    """
    seen: dict[str, list[int]] = {}  # revision -> [failed, passed, ran]
    order: dict[str, int] = {}
    for position, (letter, run_id) in enumerate(
        zip(test.outcomes, test.run_ids, strict=False)
    ):
        run = runs.get(run_id)
        if run is None or not run.ci or not run.revision:
            continue
        counts = seen.setdefault(run.revision, [0, 0, 0])
        order[run.revision] = position
        counts[2] += 1
        if letter in FAILING:
            counts[0] += 1
        elif letter in PASSING:
            counts[1] += 1
    flaky = [
        (counts[0], order[revision], revision)
        for revision, counts in seen.items()
        if counts[0] and counts[1]
    ]
    if not flaky:
        return None, 0, 0
    _, _, revision = max(flaky)
    return revision, seen[revision][0], seen[revision][2]


def _revision_of(
    test: TestHistory, runs: Mapping[str, Run], position: int
) -> str | None:
    if not 0 <= position < len(test.run_ids):
        return None
    run = runs.get(test.run_ids[position])
    return run.revision if run is not None else None


def short_revision(revision: str) -> str:
    """A commit as people quote it: seven hex digits of a full hash."""
    if len(revision) > 7 and all(c in "0123456789abcdef" for c in revision.lower()):
        return revision[:7]
    return revision
