"""The records of the test history, as every reader sees them.

This module is the contract between the history store and what is built on
it (flaky analysis, slowest-first ordering, shard plans, the HTML report):
readers use only these records, whatever the stored layout is.
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import median
from typing import Any

import attrs

# The letters live in their own module (the recorder imports them at pytest
# start-up, without attrs); they are part of this module's contract too.
from pytest_crosscache.history.outcomes import ERROR
from pytest_crosscache.history.outcomes import FAILED
from pytest_crosscache.history.outcomes import FAILING
from pytest_crosscache.history.outcomes import OUTCOMES
from pytest_crosscache.history.outcomes import PASSED
from pytest_crosscache.history.outcomes import PASSING
from pytest_crosscache.history.outcomes import RERUN_PASSED
from pytest_crosscache.history.outcomes import SKIPPED
from pytest_crosscache.history.outcomes import XFAILED
from pytest_crosscache.history.outcomes import XPASSED

__all__ = [
    "ERROR",
    "FAILED",
    "FAILING",
    "OUTCOMES",
    "PASSED",
    "PASSING",
    "RERUN_PASSED",
    "SKIPPED",
    "XFAILED",
    "XPASSED",
    "History",
    "Run",
    "TestHistory",
]


@attrs.frozen
class Run:
    """One recorded pytest session."""

    #: Unique per session, across machines too.
    id: str
    #: When the session started, in seconds since the epoch.
    started: float
    #: The commit the session ran on (CI variable or ``.git/HEAD``), if known.
    revision: str | None
    #: Whether the ``CI`` environment variable was set: CI runs cannot have
    #: been edited between runs of the same revision.
    ci: bool
    #: Wall-clock seconds of the session.
    duration: float
    #: Tests that ran in the session.
    tests: int
    #: Tests that failed or errored in the session.
    failed: int


@attrs.frozen
class TestHistory:
    """A test's recent runs, oldest first."""

    __test__ = False  # not a test class, whatever pytest's collector thinks

    nodeid: str
    #: One character of :data:`OUTCOMES` per recorded run, oldest first.
    outcomes: str
    #: Seconds (setup + call + teardown), aligned with :attr:`outcomes`.
    durations: tuple[float, ...]
    #: The :attr:`Run.id` of each outcome, aligned with :attr:`outcomes`.
    run_ids: tuple[str, ...]

    def median_duration(self) -> float | None:
        """The median of the recorded durations, or ``None`` with none recorded."""
        return median(self.durations) if self.durations else None


@attrs.frozen
class History:
    """The whole recorded history, or the part of it that was asked for."""

    #: Runs by :attr:`Run.id`: every run still referenced by a test's window.
    runs: Mapping[str, Run]
    #: Tests by node id.
    tests: Mapping[str, TestHistory]

    @classmethod
    def empty(cls) -> History:
        """A history with nothing recorded."""
        return cls(runs={}, tests={})


def run_to_json(run: Run) -> dict[str, Any]:
    """A run's fields but its id, as the runs index and pending files store them."""
    return {
        "started": run.started,
        "revision": run.revision,
        "ci": run.ci,
        "duration": run.duration,
        "tests": run.tests,
        "failed": run.failed,
    }


def run_from_json(run_id: str, value: object) -> Run | None:
    """The run stored as ``value`` (see :func:`run_to_json`); ``None`` if damaged."""
    if not isinstance(value, dict):
        return None
    started = value.get("started")
    revision = value.get("revision")
    duration = value.get("duration", 0.0)
    tests = value.get("tests", 0)
    failed = value.get("failed", 0)
    if (
        not is_number(started)
        or not (revision is None or isinstance(revision, str))
        or not is_number(duration)
        or not isinstance(tests, int)
        or not isinstance(failed, int)
    ):
        return None
    return Run(
        id=run_id,
        started=float(started),  # type: ignore[arg-type]
        revision=revision,
        ci=bool(value.get("ci", False)),
        duration=float(duration),
        tests=tests,
        failed=failed,
    )


def is_number(value: object) -> bool:
    """A JSON number (``True`` and ``False`` are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
