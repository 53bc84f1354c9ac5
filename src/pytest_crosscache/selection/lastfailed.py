"""``cache/lastfailed`` and the ``--lf`` / ``--ff`` / ``--lfnf`` options.

Three plugins, registered under the names pytest gives its own three, so
that code written for pytest's provider finds and steers them:
``lfplugin`` (:class:`LastFailedPlugin`: records failures, selects or
reorders with ``--lf``/``--ff``), ``lfplugin-collwrapper``
(:class:`LastFailedCollection`: with ``--lf``, collects files with
failures first) and ``lfplugin-collskip`` (:class:`SkipFilesWithoutFailures`:
once a failure is found, skips the files without any).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from _pytest import cacheprovider as _builtin

from pytest_crosscache import _json
from pytest_crosscache._keys import LASTFAILED_KEY
from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache._xdist import is_xdist_worker
from pytest_crosscache.cache import ABSENT
from pytest_crosscache.cache import DAMAGED
from pytest_crosscache.fs.paths import UnsafePathError
from pytest_crosscache.fs.paths import relative_parts
from pytest_crosscache.selection.records import place
from pytest_crosscache.selection.records import read_record
from pytest_crosscache.selection.records import store_record

COLLECTION_PLUGIN = "lfplugin-collwrapper"
SKIP_FILES_PLUGIN = "lfplugin-collskip"

#: pytest's class for ``lfplugin``.  Ours derives from it for one reason:
#: plugins such as pytest-lf-skip recognise the last-failed plugin with
#: ``isinstance(plugin, LFPlugin)``.  Typed as Any so that the name's
#: absence from some pytest version would not break the import.
_BuiltinLFPlugin: Any = getattr(_builtin, "LFPlugin", object)


def load_lastfailed(cache: object) -> dict[str, Any]:
    """The stored failures, or an empty record (with a warning) if damaged."""
    stored = read_record(cache, LASTFAILED_KEY)
    if stored is ABSENT or stored is DAMAGED:
        return {}
    if isinstance(stored, dict):
        return stored
    warn_cache(
        f"ignoring {LASTFAILED_KEY!r}: expected a mapping of node ids, found "
        f"{type(stored).__name__}; starting with no known failures"
    )
    return {}


class Failures(dict[str, Any]):
    """The failures of ``cache/lastfailed`` as the session changes them.

    Keys are node id strings.  pytest 9 also hands out structured node ids
    (``report.id``), and code written for it that shares this mapping
    (pytest-lf-skip copies it into its own plugin) uses those as keys: any
    key is stored and looked up by its string form.
    """

    def __getitem__(self, key: object) -> Any:
        return super().__getitem__(str(key))

    def __setitem__(self, key: object, value: Any) -> None:
        super().__setitem__(str(key), value)

    def __delitem__(self, key: object) -> None:
        super().__delitem__(str(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(str(key))

    def get(self, key: object, default: Any = None) -> Any:
        return super().get(str(key), default)

    def pop(self, key: object, *default: Any) -> Any:
        return super().pop(str(key), *default)

    def setdefault(self, key: object, default: Any = None) -> Any:
        return super().setdefault(str(key), default)

    def update(  # type: ignore[override]
        self, other: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (), /, **kw: Any
    ) -> None:
        pairs = other.items() if isinstance(other, Mapping) else other
        for key, value in [*pairs, *kw.items()]:
            self[key] = value


class LastFailedPlugin(_BuiltinLFPlugin):  # type: ignore[misc]
    """pytest's ``lfplugin``: tracks which tests fail and serves ``--lf`` / ``--ff``.

    Always registered, so ``--lf`` knows next time.  ``lastfailed``
    evolves through the session exactly like pytest's record; at the end,
    the tests whose outcome this session saw are applied to whatever
    concurrent sessions stored meanwhile, instead of overwriting it.

    The attributes conftests use on pytest's plugin mean the same here:
    ``active`` (``False`` leaves ``--lf``/``--ff`` selection to someone
    else while failures are still recorded), ``lastfailed`` (the live
    record, which others may add to), ``get_last_failed_paths()`` and,
    with ``--lf``, ``_last_failed_paths``.  None of pytest's code runs:
    every hook of the base class is replaced.
    """

    def __init__(self, config: pytest.Config) -> None:
        # The base's __init__ is deliberately not called: it would register
        # pytest's collection wrapper instead of ours.
        self.config = config
        self.active: bool = bool(
            config.getoption("lf") or config.getoption("failedfirst")
        )
        cache = getattr(config, "cache", None)
        self._read_from = place(cache)
        with shown_not_raised():
            self.lastfailed = Failures(load_lastfailed(cache))
        self._initial = dict(self.lastfailed)
        #: node id -> True (failing) / False (no longer failing), as seen here.
        self.outcomes: dict[str, bool] = {}
        self._previously_failed_count: int | None = None
        self._report_status: str | None = None
        self._skipped_files = 0
        self._last_failed_paths: set[Path] = set()
        if config.getoption("lf"):
            self._last_failed_paths = self.get_last_failed_paths()
            config.pluginmanager.register(LastFailedCollection(self), COLLECTION_PLUGIN)

    def get_last_failed_paths(self) -> set[Path]:
        """Files holding known failures, and every directory above them.

        A node id's path part comes from the record, which anyone who can
        write the cache can fill: one that is no plain relative path (or
        cannot name a file at all) is not looked up, and a warning names it.
        The id itself stays in the record; it just selects no file.
        """
        rootpath = self.config.rootpath
        candidates: set[Path] = set()
        odd: list[str] = []
        for nodeid in self.lastfailed:
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

    # -- recording ------------------------------------------------------------

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
        current = self.lastfailed
        if stored == self._initial:
            # Nobody else wrote since we started: our record is the answer,
            # down to the order of its keys.
            return dict(current)
        merged = dict(stored) if isinstance(stored, dict) else {}
        # The tests this session has an opinion on: those it saw run, and
        # those others (a conftest, another plugin) added or removed.
        touched = self.outcomes.keys() | (current.keys() ^ self._initial.keys())
        for nodeid in touched:
            if nodeid in current:
                merged[nodeid] = current[nodeid]
            else:
                merged.pop(nodeid, None)
        return merged

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = self.config
        if config.getoption("cacheshow") or is_xdist_worker(config):
            return
        cache = getattr(config, "cache", None)
        same_place = place(cache) == self._read_from
        if same_place and not self.outcomes and self.lastfailed == self._initial:
            return
        with shown_not_raised():
            # Absent counts as empty: a session without failures writes
            # nothing to a cache that has no record yet, like pytest.
            store_record(
                cache,
                LASTFAILED_KEY,
                own=_storable(dict(self.lastfailed)),
                merge=self._storable_merge if same_place else None,
                default={},
            )

    def _storable_merge(self, stored: object) -> dict[str, Any]:
        return _storable(self.merged_with(stored))

    # -- selection ------------------------------------------------------------

    def pytest_report_collectionfinish(self) -> str | None:
        if self.active and self.config.get_verbosity() >= 0:
            return f"run-last-failure: {self._report_status}"
        return None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None]:
        result = yield
        if not self.active:
            return result
        known = self.lastfailed
        if not known:
            self._report_status = "no previously failed tests, "
            if config.getoption("last_failed_no_failures") == "none":
                self._report_status += "deselecting all items."
                config.hook.pytest_deselected(items=items[:])
                items[:] = []
            else:
                self._report_status += "not deselecting items."
            return result

        failed = [item for item in items if item.nodeid in known]
        rest = [item for item in items if item.nodeid not in known]
        self._previously_failed_count = len(failed)
        if not failed:
            self._report_status = f"{len(known)} known failures not in selected tests"
        else:
            if config.getoption("lf"):
                items[:] = failed
                config.hook.pytest_deselected(items=rest)
            else:
                items[:] = failed + rest
            noun = "failure" if len(failed) == 1 else "failures"
            first = " first" if config.getoption("failedfirst") else ""
            self._report_status = f"rerun previous {len(failed)} {noun}{first}"
        if self._skipped_files:
            files = "file" if self._skipped_files == 1 else "files"
            self._report_status += f" (skipped {self._skipped_files} {files})"
        return result


# Hooks pytest's class may have that ours does not replace must not run:
# pluggy registers every ``pytest_*`` routine it finds, inherited or not.
for _name in dir(_BuiltinLFPlugin):
    if _name.startswith("pytest_") and _name not in LastFailedPlugin.__dict__:
        setattr(LastFailedPlugin, _name, None)


def _storable(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without the node ids UTF-8 cannot store (with a warning)."""
    kept = _json.drop_unstorable(LASTFAILED_KEY, list(record))
    if len(kept) == len(record):
        return record
    return {nodeid: record[nodeid] for nodeid in kept}


class LastFailedCollection:
    """pytest's ``lfplugin-collwrapper``: with ``--lf``, failures' files first.

    Once one file with a known failure has been collected, the remaining
    files without failures are not collected at all (see
    :class:`SkipFilesWithoutFailures`).  Waiting for that first hit keeps
    a stale record, whose failures no longer exist, from hiding every test.
    """

    def __init__(self, lfplugin: LastFailedPlugin) -> None:
        self.lfplugin = lfplugin
        self._collected_at_least_one_failure = False

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        paths = self.lfplugin._last_failed_paths
        if isinstance(collector, (pytest.Session, pytest.Directory)):
            # Stable sort: nodes on the way to a failure come first.
            report.result = sorted(
                report.result, key=lambda node: node.path not in paths
            )
        elif isinstance(collector, pytest.File) and collector.path in paths:
            known = self.lfplugin.lastfailed
            if not self._collected_at_least_one_failure:
                if not any(node.nodeid in known for node in report.result):
                    return report
                self.lfplugin.config.pluginmanager.register(
                    SkipFilesWithoutFailures(self.lfplugin), SKIP_FILES_PLUGIN
                )
                self._collected_at_least_one_failure = True
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


class SkipFilesWithoutFailures:
    """pytest's ``lfplugin-collskip``: files without known failures collect nothing."""

    def __init__(self, lfplugin: LastFailedPlugin) -> None:
        self.lfplugin = lfplugin

    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> pytest.CollectReport | None:
        if (
            isinstance(collector, pytest.File)
            and collector.path not in self.lfplugin._last_failed_paths
        ):
            self.lfplugin._skipped_files += 1
            return pytest.CollectReport(
                collector.nodeid, "passed", longrepr=None, result=[]
            )
        return None
