"""The outcome letters of the test history, without the records around them.

Kept apart from :mod:`~pytest_crosscache.history.model` so that the
recorder, which pytest imports at start-up, does not pay for attrs.
"""

from __future__ import annotations

#: One character per recorded outcome of a test in a run.
PASSED = "P"
FAILED = "F"
ERROR = "E"
SKIPPED = "S"
XFAILED = "x"
XPASSED = "X"
#: Failed at least once in the session, then passed on a rerun (as reported
#: by pytest-rerunfailures): flaky evidence within one session.
RERUN_PASSED = "R"

OUTCOMES = frozenset((PASSED, FAILED, ERROR, SKIPPED, XFAILED, XPASSED, RERUN_PASSED))
#: Outcomes that count as a test going red.
FAILING = frozenset((FAILED, ERROR))
#: Outcomes that count as a test going green.
PASSING = frozenset((PASSED, RERUN_PASSED, XFAILED))

#: Words for the letters, as commands print them.
NAMES = {
    PASSED: "passed",
    FAILED: "failed",
    ERROR: "error",
    SKIPPED: "skipped",
    XFAILED: "xfailed",
    XPASSED: "xpassed",
    RERUN_PASSED: "passed on rerun",
}
