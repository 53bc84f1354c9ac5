"""``cache/nodeids`` and the ``--nf`` option: pytest's ``nfplugin``."""

from __future__ import annotations

from collections.abc import Generator
from collections.abc import Iterable
from pathlib import Path

import pytest

from pytest_crosscache import _json
from pytest_crosscache._keys import NODEIDS_KEY
from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache._xdist import is_xdist_worker
from pytest_crosscache.cache import ABSENT
from pytest_crosscache.cache import DAMAGED
from pytest_crosscache.selection.records import place
from pytest_crosscache.selection.records import read_record
from pytest_crosscache.selection.records import store_record


class NewFirstPlugin:
    """pytest's ``nfplugin``: remembers the tests seen; ``--nf`` runs new ones first.

    Always registered, after ``lfplugin`` as in pytest, so that its
    ``tryfirst`` wrapper is outermost: before the other plugins run it sees
    the whole collection, after them the final list of items, which it
    reorders when ``active`` (``--nf``).  At the end, ids unknown at the
    start are merged into what is stored then, so concurrent sessions add
    to each other.  When the session collected the whole suite, ids of
    tests that no longer exist are dropped, so the record tracks the suite
    rather than its history.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.active: bool = bool(config.getoption("newfirst"))
        cache = getattr(config, "cache", None)
        self._read_from = place(cache)
        with shown_not_raised():
            stored = read_record(cache, NODEIDS_KEY)
            # A damaged record counts as none, so it is rewritten at the end.
            self.had_record = stored is not ABSENT and stored is not DAMAGED
            self.known = _validated(stored) if self.had_record else set()
        self.seen: set[str] = set()
        #: Every collected id, before deselection; ``None`` unless this
        #: session's collection can stand for the whole suite.
        self.collected: set[str] | None = None
        self._collection_failed = False

    @property
    def cached_nodeids(self) -> set[str]:
        """The ids known at the start and those seen since, as in pytest's plugin."""
        return self.known | self.seen

    def record(self, nodeids: Iterable[str]) -> None:
        self.seen.update(nodeids)

    def whole_suite(self) -> set[str] | None:
        """Every collected node id if this session collected the whole suite.

        ``None`` for partial collections and collections with errors; the
        test history forgets tests by it too.
        """
        return None if self._collection_failed else self.collected

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._collection_failed = True

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(
        self, items: list[pytest.Item]
    ) -> Generator[None]:
        if collects_whole_suite(self.config):
            self.collected = {item.nodeid for item in items}
        result = yield
        if self.active:
            known = self.known
            new = [item for item in items if item.nodeid not in known]
            old = [item for item in items if item.nodeid in known]
            items[:] = _newest_files_first(new) + _newest_files_first(old)
        self.record(item.nodeid for item in items)
        return result

    def pytest_sessionfinish(self) -> None:
        config = self.config
        if (
            config.getoption("cacheshow")
            or is_xdist_worker(config)
            or config.getoption("collectonly")
        ):
            return
        cache = getattr(config, "cache", None)
        same_place = place(cache) == self._read_from
        collected = self.whole_suite()
        new = self.seen - self.known
        gone = self.known - collected if collected is not None else set()
        if same_place and not new and not gone and self.had_record:
            return

        def merge(stored: object) -> list[str]:
            # Forget only ids we knew and did not find: what concurrent
            # sessions added meanwhile stays, and tests that exist but were
            # deselected stay unknown, as they have not run yet.
            ids = sorted((_validated(stored, warn=False) - gone) | self.seen)
            return _json.drop_unstorable(NODEIDS_KEY, ids)

        with shown_not_raised():
            store_record(
                cache,
                NODEIDS_KEY,
                own=_json.drop_unstorable(
                    NODEIDS_KEY, sorted((self.known - gone) | self.seen)
                ),
                merge=merge if same_place else None,
                default=[],
            )


def collects_whole_suite(config: pytest.Config) -> bool:
    """Whether this session's collection covers everything the project holds.

    True for a plain ``pytest`` run that collects ``testpaths`` or the
    rootdir, in which ``-k``, ``-m`` or ``--deselect`` may still narrow
    what runs.  Explicit paths, ``--ignore`` options given on the command
    line, ``--lf`` (which skips files) and xdist (whose controller only
    learns the already deselected ids) make it a partial collection.
    """
    if config.getoption("lf") or config.pluginmanager.hasplugin("dsession"):
        return False
    if is_xdist_worker(config):
        return False
    source = config.args_source
    if source == pytest.Config.ArgsSource.ARGS:
        return False
    if (
        source == pytest.Config.ArgsSource.INVOCATION_DIR
        and config.invocation_params.dir != config.rootpath
    ):
        return False
    return not any(
        arg.startswith(("--ignore", "--pyargs"))
        for arg in config.invocation_params.args
    )


def _newest_files_first(items: list[pytest.Item]) -> list[pytest.Item]:
    # One stat per file, not per test: a file holds many tests.
    mtimes: dict[Path, float] = {}

    def mtime(item: pytest.Item) -> float:
        path = item.path
        value = mtimes.get(path)
        if value is None:
            value = mtimes[path] = path.stat().st_mtime
        return value

    return sorted(items, key=mtime, reverse=True)


def _validated(stored: object, *, warn: bool = True) -> set[str]:
    if isinstance(stored, list):
        odd = next((item for item in stored if not isinstance(item, str)), None)
        if odd is None:
            return set(stored)
        found = f"a list holding {type(odd).__name__} {odd!r:.40}"
    else:
        found = type(stored).__name__
    if warn:
        warn_cache(
            f"ignoring {NODEIDS_KEY!r}: expected a list of node id strings, found "
            f"{found}; treating every test as new"
        )
    return set()
