"""Recording the test history: each test's outcome and duration, once per session.

Registered as the plugin ``crosscache-history`` at pytest start-up, so this
module stays light: attrs, the store and the flaky analysis are imported
only at the end of a session that recorded something.

What is recorded for each test that ran (on the xdist controller, from the
reports the workers send; never by the workers):

* its outcome letter (:mod:`~pytest_crosscache.history.outcomes`): an
  error in setup or teardown makes it ``E`` unless the test itself
  failed; a test that pytest-rerunfailures ran again after a failure is
  ``R`` when it finally passed, ``F`` when it never did;
* its duration: setup + call + teardown as pytest reports them, of the
  last attempt when it was rerun.  A fixture's setup is timed in the
  setup of the first test that uses it, its teardown in the teardown of
  the last, so a module- or class-scoped fixture's cost lands on the
  first and the last test of its scope (as in ``pytest --durations``).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest

from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache._xdist import is_xdist_worker
from pytest_crosscache.history.outcomes import ERROR
from pytest_crosscache.history.outcomes import FAILED
from pytest_crosscache.history.outcomes import FAILING
from pytest_crosscache.history.outcomes import PASSED
from pytest_crosscache.history.outcomes import RERUN_PASSED
from pytest_crosscache.history.outcomes import SKIPPED
from pytest_crosscache.history.outcomes import XFAILED
from pytest_crosscache.history.outcomes import XPASSED
from pytest_crosscache.history.settings import DEFAULT_WINDOW
from pytest_crosscache.history.settings import HISTORY_INI
from pytest_crosscache.history.settings import RUNS_INI
from pytest_crosscache.history.settings import parse_window

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_crosscache.history.model import History
    from pytest_crosscache.history.model import Run

#: The plugin name of the session's recorder.
RECORDER_NAME = "crosscache-history-recorder"
#: The nodeid recorder of :mod:`pytest_crosscache.selection.newfirst`, which
#: knows whether the session collected the whole suite.
NODEIDS_PLUGIN = "nfplugin"
#: The flaky section names at most this many tests.
MAX_FLAKY_SHOWN = 20


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        HISTORY_INI,
        type="bool",
        default=True,
        help="Record each test's outcome and duration in the cache, for "
        "'crosscache history/slowest/flaky' (default true)",
    )
    parser.addini(
        RUNS_INI,
        default=str(DEFAULT_WINDOW),
        help=f"Runs of each test the history keeps (default {DEFAULT_WINDOW})",
    )


def history_enabled(config: pytest.Config) -> bool:
    """Whether this session records history: on unless switched off or cacheless."""
    try:
        enabled = bool(config.getini(HISTORY_INI))
    except (ValueError, pytest.UsageError) as exc:
        # pytest 9.2 raises its own usage error, which does not name the setting.
        raise pytest.UsageError(f"{HISTORY_INI}: {exc}; use true or false") from None
    if not enabled or is_xdist_worker(config):
        return False
    # With the cache provider switched off nothing is written, history
    # included: -p no:cacheprovider, or a conftest that blocks it.
    from pytest_crosscache.cache import cache_enabled

    return cache_enabled(config) and not config.pluginmanager.is_blocked(
        "cacheprovider"
    )


def history_window(config: pytest.Config) -> int:
    """``cache_history_runs``; a usage error names it when it is not a count."""
    try:
        return parse_window(config.getini(RUNS_INI))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    if history_enabled(config):
        config.pluginmanager.register(
            HistoryRecorder(config, history_window(config)), RECORDER_NAME
        )


class HistoryRecorder:
    """Collects the session's outcomes and durations and stores them at the end."""

    def __init__(self, config: pytest.Config, window: int) -> None:
        self.config = config
        self.window = window
        self.started = time.time()
        #: node id -> outcome letter of the latest attempt.
        self.outcomes: dict[str, str] = {}
        #: node id -> seconds of the latest attempt so far.
        self.durations: dict[str, float] = {}
        #: Tests that pytest-rerunfailures reported as rerun.
        self.reran: set[str] = set()
        #: (node id, evidence) of tests that failed here and are known flaky.
        self.flaky: list[tuple[str, str]] = []

    def pytest_sessionstart(self) -> None:
        self.started = time.time()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Runs three times per test: kept to dict operations.
        nodeid = report.nodeid
        # pytest-rerunfailures adds "rerun" to pytest's three outcomes.
        outcome: str = report.outcome
        if type(report) is not pytest.TestReport:
            # A subtest's report: its failure fails the test; its time is
            # part of the test's call.
            if outcome == "failed":
                self.outcomes[nodeid] = FAILED
            return
        when = report.when
        if when == "call":
            self.durations[nodeid] = self.durations.get(nodeid, 0.0) + report.duration
            if outcome == "passed":
                if self.outcomes.get(nodeid) == FAILED:
                    return  # a failed subtest
                letter = XPASSED if hasattr(report, "wasxfail") else PASSED
            elif outcome == "failed":
                letter = FAILED
            elif outcome == "skipped":
                letter = XFAILED if hasattr(report, "wasxfail") else SKIPPED
            else:  # "rerun": pytest-rerunfailures tries again
                self.reran.add(nodeid)
                letter = FAILED
            self.outcomes[nodeid] = letter
        elif when == "setup":
            # Every attempt starts with its setup: the last one's time counts.
            self.durations[nodeid] = report.duration
            if outcome == "passed":
                self.outcomes.pop(nodeid, None)
            elif outcome == "skipped":
                self.outcomes[nodeid] = (
                    XFAILED if hasattr(report, "wasxfail") else SKIPPED
                )
            else:
                if outcome != "failed":
                    self.reran.add(nodeid)
                self.outcomes[nodeid] = ERROR
        else:
            self.durations[nodeid] = self.durations.get(nodeid, 0.0) + report.duration
            if outcome != "passed" and outcome != "skipped":
                if outcome != "failed":
                    self.reran.add(nodeid)
                if self.outcomes.get(nodeid) not in FAILING:
                    self.outcomes[nodeid] = ERROR

    def results(self) -> dict[str, tuple[str, float]]:
        """node id -> (outcome letter, seconds) of every test that ran."""
        durations = self.durations
        reran = self.reran
        return {
            nodeid: (
                RERUN_PASSED if letter == PASSED and nodeid in reran else letter,
                durations.get(nodeid, 0.0),
            )
            for nodeid, letter in self.outcomes.items()
        }

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.outcomes or self.config.getoption("collectonly"):
            return
        with shown_not_raised():
            self._record(session)

    def _record(self, session: pytest.Session) -> None:
        # Imported only now: pytest start-up does not pay for attrs and the store.
        from pytest_crosscache.cache import session_cache
        from pytest_crosscache.history.flaky import FLAKY
        from pytest_crosscache.history.flaky import verdict
        from pytest_crosscache.history.model import Run
        from pytest_crosscache.history.revision import detect_revision
        from pytest_crosscache.history.revision import is_ci
        from pytest_crosscache.history.store import record_run

        results = self.results()
        failed = [
            nodeid for nodeid, (letter, _) in results.items() if letter in FAILING
        ]
        run = Run(
            id=os.urandom(8).hex(),
            started=self.started,
            revision=detect_revision(self.config.rootpath),
            ci=is_ci(),
            duration=max(0.0, time.time() - self.started),
            tests=len(results),
            failed=len(failed),
        )
        nodeids = self.config.pluginmanager.get_plugin(NODEIDS_PLUGIN)
        collected = nodeids.whole_suite() if nodeids is not None else None
        cache = session_cache(self.config)
        if cache is None:
            # A conftest replaced config.cache with a cache of another kind.
            return
        try:
            history: History = record_run(
                cache.backend,
                run,
                results,
                window=self.window,
                collected=collected,
                want=failed,
                on_damage=lambda problem: warn_cache(
                    f"test history: {problem}; rewriting it without the damaged part"
                ),
                pending=cache.cachedir,
            )
        except TimeoutError as exc:
            self._keep_for_later(cache.cachedir, run, results, exc)
            return
        except OSError as exc:
            warn_cache(f"test history of this run was not recorded: {exc}")
            return
        except Exception as exc:
            # A bug of ours must not turn the user's session into an
            # INTERNALERROR; the warning says what went wrong.
            warn_cache(
                "test history of this run was not recorded: "
                f"{type(exc).__name__}: {exc}"
            )
            return
        for nodeid in failed:
            test = history.tests.get(nodeid)
            if test is not None:
                found = verdict(test, history.runs)
                if found.status == FLAKY:
                    self.flaky.append((nodeid, found.evidence))

    def _keep_for_later(
        self,
        cachedir: Path,
        run: Run,
        results: dict[str, tuple[str, float]],
        exc: TimeoutError,
    ) -> None:
        from pytest_crosscache.history import pending

        try:
            path = pending.save(cachedir, run, results)
        except OSError as error:
            warn_cache(f"test history of this run was not recorded: {exc}; {error}")
            return
        warn_cache(
            f"test history of this run is kept in {path} for the next session: {exc}"
        )

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter
    ) -> None:
        if not self.flaky:
            return
        terminalreporter.write_sep("=", "known flaky tests that failed in this run")
        for nodeid, evidence in self.flaky[:MAX_FLAKY_SHOWN]:
            terminalreporter.write_line(f"FLAKY {nodeid} - {evidence}")
        hidden = len(self.flaky) - MAX_FLAKY_SHOWN
        if hidden > 0:
            terminalreporter.write_line(
                f"... and {hidden} more (crosscache flaky lists them all)"
            )
