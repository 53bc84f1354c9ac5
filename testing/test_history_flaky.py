"""Telling flaky from broken, on histories built by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_crosscache.history.flaky import classify
from pytest_crosscache.history.flaky import short_revision
from pytest_crosscache.history.flaky import verdict
from pytest_crosscache.history.model import History
from pytest_crosscache.history.model import Run
from pytest_crosscache.history.model import TestHistory

A = "a" * 40
B = "b" * 40


def history_of(*runs: tuple[str, str | None, bool]) -> History:
    """One test's history: (outcome, revision, ci) per run, oldest first."""
    made = {
        f"r{n}": Run(
            id=f"r{n}",
            started=float(n),
            revision=revision,
            ci=ci,
            duration=1.0,
            tests=1,
            failed=0,
        )
        for n, (_, revision, ci) in enumerate(runs)
    }
    test = TestHistory(
        nodeid="t.py::x",
        outcomes="".join(outcome for outcome, _, _ in runs),
        durations=tuple(1.0 for _ in runs),
        run_ids=tuple(made),
    )
    return History(runs=made, tests={test.nodeid: test})


def status(history: History) -> str:
    return classify(history)["t.py::x"].status


def test_passing_and_failing_on_one_ci_commit_is_flaky() -> None:
    history = history_of(("P", A, True), ("F", A, True), ("P", A, True))
    verdict = classify(history)["t.py::x"]
    assert verdict.status == "flaky"
    assert verdict.evidence == "failed 1 of the last 3 runs on commit aaaaaaa"
    assert (verdict.flips, verdict.failures, verdict.runs) == (2, 1, 3)


def test_a_local_edit_fail_fix_loop_is_fixed() -> None:
    history = history_of(("P", A, False), ("F", A, False), ("P", A, False))
    assert status(history) == "fixed"


def test_broken_by_one_commit_and_fixed_by_the_next_is_fixed() -> None:
    history = history_of(("P", A, True), ("F", B, True), ("F", B, True), ("P", A, True))
    # A revert: A passed both times, B failed both times.
    assert status(history) == "fixed"


def test_a_rerun_in_one_session_is_flaky() -> None:
    verdict = classify(history_of(("P", None, False), ("R", None, False)))["t.py::x"]
    assert verdict.status == "flaky"
    assert "rerun" in verdict.evidence


def test_runs_without_revision_never_compare() -> None:
    assert status(history_of(("P", None, True), ("F", None, True))) == "failing"


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ("F", "failing"),
        ("PF", "failing"),
        ("P", "new"),
        ("PP", "passing"),
        ("SS", "skipped"),
        ("FP", "fixed"),
    ],
)
def test_statuses(outcomes: str, expected: str) -> None:
    assert status(history_of(*((o, A, False) for o in outcomes))) == expected


def test_short_revisions() -> None:
    assert short_revision(A) == "aaaaaaa"
    assert short_revision("v1.2-release") == "v1.2-release"


@given(
    st.lists(
        st.tuples(
            st.sampled_from("PFESxXR"),
            st.sampled_from([A, B, None]),
            st.booleans(),
        ),
        max_size=8,
    )
)
def test_classify_gives_each_test_its_verdict(runs) -> None:
    # classify takes a short cut for tests that never failed: same verdicts.
    history = history_of(*runs)
    test = history.tests["t.py::x"]
    assert classify(history) == {"t.py::x": verdict(test, history.runs)}


@pytest.mark.parametrize(
    ("outcomes", "status", "evidence"),
    [
        ("", "new", "no runs recorded"),
        ("P", "new", "one run recorded"),
        ("SS", "skipped", "skipped in the last 2 runs"),
        ("S", "skipped", "skipped in the last run"),
        ("PSx", "passing", "passed the last 3 runs"),
        ("XX", "passing", "passed the last 2 runs"),
    ],
)
def test_tests_that_never_failed(outcomes, status, evidence) -> None:
    found = classify(history_of(*((o, A, True) for o in outcomes)))["t.py::x"]
    assert (found.status, found.evidence, found.flips, found.failures) == (
        status,
        evidence,
        0,
        0,
    )
    assert found.runs == len(outcomes)
