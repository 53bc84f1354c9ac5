"""Generated test histories of any size, for the report's tests and bench/report.py.

The history is made directly as :mod:`pytest_crosscache.history.model`
records, seeded, so the same arguments always give the same history; a
few tests are planted with known behaviour (flaky, failing since a given
run, slow, getting slower) so a test can look for them on the page.
"""

from __future__ import annotations

import random

import attrs

from pytest_crosscache.history.model import FAILED
from pytest_crosscache.history.model import FAILING
from pytest_crosscache.history.model import PASSED
from pytest_crosscache.history.model import RERUN_PASSED
from pytest_crosscache.history.model import SKIPPED
from pytest_crosscache.history.model import History
from pytest_crosscache.history.model import Run
from pytest_crosscache.history.model import TestHistory

#: When the first generated run started (2026-11-01 09:00 UTC).
START = 1_793_523_600.0


@attrs.frozen
class Planted:
    """The node ids with known behaviour in a generated history."""

    flaky: tuple[str, ...]
    failing: tuple[str, ...]
    slowest: tuple[str, ...]
    slower: str
    new: str


def nodeid(index: int) -> str:
    return f"tests/area_{index // 1000:02d}/test_mod_{index // 50:04d}.py::test_case_{index}"


def generate(
    tests: int = 200, runs: int = 20, seed: int = 0
) -> tuple[History, Planted]:
    """A history of ``tests`` tests over ``runs`` runs, one a day."""
    assert tests >= 40
    assert runs >= 6
    rng = random.Random(seed)
    # CI runs each commit a few times (pushes, re-runs, merges), so flaky
    # tests pass and fail on the same revision.
    revisions = [f"{rng.getrandbits(160):040x}" for _ in range(runs)]
    run_list = [
        Run(
            id=f"run-{number:03d}-{rng.getrandbits(32):08x}",
            started=START + number * 86400 + rng.uniform(0, 3600),
            revision=revisions[number // 3],
            ci=True,
            duration=0.0,
            tests=0,
            failed=0,
        )
        for number in range(runs)
    ]
    flaky = tuple(nodeid(i) for i in range(3, 3 + 5))
    failing = tuple(nodeid(i) for i in range(20, 23))
    slowest = tuple(nodeid(i) for i in range(30, 35))
    slower = nodeid(36)
    new = nodeid(tests - 1)
    histories: dict[str, TestHistory] = {}
    per_run_seconds = [0.0] * runs
    per_run_tests = [0] * runs
    per_run_failed = [0] * runs
    for index in range(tests):
        node = nodeid(index)
        first = runs - 1 if node == new else 0
        outcomes = []
        durations = []
        for number in range(first, runs):
            outcome = SKIPPED if index % 97 == 0 else PASSED
            seconds = rng.lognormvariate(-4.0, 1.0)
            if node in flaky:
                rank = flaky.index(node)
                # Flaky: fails in a different pattern per test.
                outcome = FAILED if (number + rank) % (2 + rank) == 0 else PASSED
                if rank == 0 and number % 5 == 1:
                    outcome = RERUN_PASSED
            elif node in failing:
                # Broken by a commit: from the first run of a revision on.
                broke = ((runs - 1) // 3 - failing.index(node)) * 3
                outcome = FAILED if number >= broke else PASSED
            elif node in slowest:
                seconds = 30.0 - slowest.index(node) * 4 + rng.uniform(-0.5, 0.5)
            elif node == slower:
                seconds = 4.0 + number * 0.6
            outcomes.append(outcome)
            durations.append(seconds)
            per_run_seconds[number] += seconds
            per_run_tests[number] += 1
            per_run_failed[number] += outcome in FAILING
        histories[node] = TestHistory(
            nodeid=node,
            outcomes="".join(outcomes),
            durations=tuple(durations),
            run_ids=tuple(run.id for run in run_list[first:]),
        )
    run_list = [
        attrs.evolve(
            run,
            # Two workers' worth of wall time.
            duration=per_run_seconds[number] / 2 + 3.0,
            tests=per_run_tests[number],
            failed=per_run_failed[number],
        )
        for number, run in enumerate(run_list)
    ]
    history = History(runs={run.id: run for run in run_list}, tests=histories)
    return history, Planted(flaky, failing, slowest, slower, new)
