"""``cache/lastfailed`` and the ``--lf`` / ``--ff`` / ``--lfnf`` options."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_crosscache import _json
from pytest_crosscache._keys import LASTFAILED_KEY
from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache._xdist import is_xdist_worker
from pytest_crosscache.cache import ABSENT
from pytest_crosscache.cache import DAMAGED
from pytest_crosscache.cache import Cache
from pytest_crosscache.fs.paths import UnsafePathError
from pytest_crosscache.fs.paths import relative_parts


def load_lastfailed(cache: Cache) -> dict[str, Any]:
    """The stored failures, or an empty record (with a warning) if damaged."""
    stored = cache._read_record(LASTFAILED_KEY)
    if stored is ABSENT or stored is DAMAGED:
        return {}
    if isinstance(stored, dict):
        return stored
    warn_cache(
        f"ignoring {LASTFAILED_KEY!r}: expected a mapping of node ids, found "
        f"{type(stored).__name__}; starting with no known failures"
    )
    return {}


class LastFailedRecorder:
    """Tracks which tests fail; always registered so ``--lf`` knows next time.

    ``lastfailed`` evolves through the session exactly like pytest's own
    record.  Alongside it, ``outcomes`` keeps only what this session saw,
    so that at the end it can be applied to whatever concurrent sessions
    stored meanwhile instead of overwriting their results.
    """

    def __init__(self, config: pytest.Config, cache: Cache) -> None:
        self.config = config
        self.cache = cache
        with shown_not_raised():
            self.lastfailed = load_lastfailed(cache)
        self._initial = dict(self.lastfailed)
        #: node id -> True (failing) / False (no longer failing), as seen here.
        self.outcomes: dict[str, bool] = {}

    def _failed(self, nodeid: str) -> None:
        self.lastfailed[nodeid] = True
        self.outcomes[nodeid] = True

    def _cleared(self, nodeid: str) -> None:
        self.lastfailed.pop(nodeid, None)
        self.outcomes[nodeid] = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped or (report.when == "call" and report.passed):
            self._cleared(report.nodeid)
        elif report.failed:
            self._failed(report.nodeid)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.outcome not in ("passed", "skipped"):
            self._failed(report.nodeid)
        elif report.nodeid in self.lastfailed:
            # A collector that failed last time collects now: run all it holds.
            self._cleared(report.nodeid)
            for node in report.result:
                self._failed(node.nodeid)

    def merged_with(self, stored: object) -> dict[str, Any]:
        """This session's record applied on top of what is stored now."""
        if stored == self._initial:
            # Nobody else wrote since we started: our record is the answer,
            # down to the order of its keys.
            return self.lastfailed
        merged = dict(stored) if isinstance(stored, dict) else {}
        for nodeid, failing in self.outcomes.items():
            if failing:
                merged[nodeid] = True
            else:
                merged.pop(nodeid, None)
        return merged

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = self.config
        if config.getoption("cacheshow") or is_xdist_worker(config):
            return
        if not self.outcomes:
            return
        with shown_not_raised():
            # Most sessions change nothing: check without taking the lock.
            # A writer that slips in after this check finished later than
            # us, so its record rightly stands.
            # Absent counts as empty: a session without failures writes
            # nothing to a cache that has no record yet, like pytest.  A
            # damaged record is always rewritten.
            stored = self.cache._read_record(LASTFAILED_KEY, warn=False)
            if stored is ABSENT:
                stored = {}
            if isinstance(stored, dict) and self.merged_with(stored) == stored:
                return
            self.cache.update(LASTFAILED_KEY, self._storable_merge, {})

    def _storable_merge(self, stored: object) -> dict[str, Any]:
        merged = self.merged_with(stored)
        kept = _json.drop_unstorable(LASTFAILED_KEY, list(merged))
        if len(kept) == len(merged):
            return merged
        return {nodeid: merged[nodeid] for nodeid in kept}


class LastFailedSelection:
    """``--lf`` / ``--ff``: select or reorder the tests that failed last time."""

    def __init__(self, config: pytest.Config, recorder: LastFailedRecorder) -> None:
        self.config = config
        self.recorder = recorder
        self.only_failed: bool = config.getoption("lf")
        self.failed_first: bool = config.getoption("failedfirst")
        self.status: str | None = None
        self.skipped_files = 0
        self.failed_paths: set[Path] = set()
        if self.only_failed:
            self.failed_paths = self._paths_of_failures()
            config.pluginmanager.register(
                _PreferFilesWithFailures(self), "crosscache-lf-collection"
            )

    def _paths_of_failures(self) -> set[Path]:
        """Files holding known failures, and every directory above them.

        A node id's path part comes from the record, which anyone who can
        write the cache can fill: one that is no plain relative path (or
        cannot name a file at all) is not looked up, and a warning names it.
        The id itself stays in the record; it just selects no file.
        """
        rootpath = self.config.rootpath
        candidates: set[Path] = set()
        odd: list[str] = []
        for nodeid in self.recorder.lastfailed:
            part = nodeid.split("::", 1)[0]
            if part in ("", "."):
                continue  # the rootdir itself: a parent of everything
            try:
                relative_parts(part, what="node id path")
            except UnsafePathError as exc:
                odd.append(str(exc))
                continue
            path = rootpath / part
            if path in candidates:
                continue
            candidates.add(path)
            candidates.update(path.parents)
        if odd:
            shown = "; ".join(odd[:5])
            more = f" (and {len(odd) - 5} more)" if len(odd) > 5 else ""
            with shown_not_raised():
                warn_cache(
                    f"--lf: ignoring node ids of {LASTFAILED_KEY!r} that name no "
                    f"file of the project: {shown}{more}"
                )
        # os.path.exists, not Path.exists: a path too long for the system
        # is simply not there, never an error.
        return {path for path in candidates if os.path.exists(path)}

    def pytest_report_collectionfinish(self) -> str | None:
        if self.config.get_verbosity() >= 0:
            return f"run-last-failure: {self.status}"
        return None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None]:
        result = yield
        known = self.recorder.lastfailed
        if not known:
            if config.getoption("last_failed_no_failures") == "none":
                self.status = "no previously failed tests, deselecting all items."
                config.hook.pytest_deselected(items=items[:])
                items[:] = []
            else:
                self.status = "no previously failed tests, not deselecting items."
            return result

        failed = [item for item in items if item.nodeid in known]
        if not failed:
            self.status = f"{len(known)} known failures not in selected tests"
        else:
            if self.only_failed:
                rest = [item for item in items if item.nodeid not in known]
                items[:] = failed
                config.hook.pytest_deselected(items=rest)
            else:
                items[:] = failed + [item for item in items if item.nodeid not in known]
            noun = "failure" if len(failed) == 1 else "failures"
            first = " first" if self.failed_first else ""
            self.status = f"rerun previous {len(failed)} {noun}{first}"
        if self.skipped_files:
            files = "file" if self.skipped_files == 1 else "files"
            self.status += f" (skipped {self.skipped_files} {files})"
        return result


class _PreferFilesWithFailures:
    """With ``--lf``: collect files with known failures first, and only their failures.

    Once one file with a known failure has been collected, the remaining
    files without failures are not collected at all (see
    :class:`_SkipFilesWithoutFailures`).  Waiting for that first hit keeps
    a stale record, whose failures no longer exist, from hiding every test.
    """

    def __init__(self, selection: LastFailedSelection) -> None:
        self.selection = selection
        self.skipping = False

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        paths = self.selection.failed_paths
        if isinstance(collector, (pytest.Session, pytest.Directory)):
            # Stable sort: nodes on the way to a failure come first.
            report.result = sorted(
                report.result, key=lambda node: node.path not in paths
            )
        elif isinstance(collector, pytest.File) and collector.path in paths:
            known = self.selection.recorder.lastfailed
            if not self.skipping:
                if not any(node.nodeid in known for node in report.result):
                    return report
                self.skipping = True
                collector.config.pluginmanager.register(
                    _SkipFilesWithoutFailures(self.selection), "crosscache-lf-skipfiles"
                )
            session = collector.session
            report.result[:] = [
                node
                for node in report.result
                if node.nodeid in known
                # Explicitly requested nodes and nested collectors stay.
                or session.isinitpath(node.path)
                or isinstance(node, pytest.Collector)
            ]
        return report


class _SkipFilesWithoutFailures:
    """Answers the collection of a file without known failures with an empty report."""

    def __init__(self, selection: LastFailedSelection) -> None:
        self.selection = selection

    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> pytest.CollectReport | None:
        if (
            isinstance(collector, pytest.File)
            and collector.path not in self.selection.failed_paths
        ):
            self.selection.skipped_files += 1
            return pytest.CollectReport(
                collector.nodeid, "passed", longrepr=None, result=[]
            )
        return None
