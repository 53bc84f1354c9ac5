"""``--sf``: the longest tests first, from the recorded durations.

Without pytest-xdist (or with ``-n 0``) this is an ordering of the
collected items (:class:`SlowFirstOrdering`, see :mod:`.order` for what it
keeps together).  Under xdist the controller's scheduler decides who runs
what and when (:class:`XdistSlowFirst` provides it); workers keep pytest's
order, so that all of them collect the same list even if durations change
while they start.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Generator
from collections.abc import Hashable
from typing import TYPE_CHECKING
from typing import Any

import pytest

from pytest_crosscache.scheduling.durations import recorded_durations
from pytest_crosscache.scheduling.estimate import estimate
from pytest_crosscache.scheduling.estimate import without_group
from pytest_crosscache.scheduling.order import slowest_first

if TYPE_CHECKING:
    from pytest_crosscache.scheduling.xdist_scheduler import SlowFirstScheduling

#: pytest's plugin names, under which the recorders of --lf/--ff and --nf are
#: registered.
LASTFAILED_PLUGIN = "lfplugin"
NODEIDS_PLUGIN = "nfplugin"
#: Fixture scopes above "function", outermost first.
HIGH_SCOPES = ("session", "package", "module", "class")


def rank_function(config: pytest.Config) -> Callable[[str], int]:
    """The group of a test under ``--nf`` and ``--ff``: lower runs first.

    ``--nf`` puts tests never seen before first, ``--ff`` the last failures;
    with both, new tests lead and failures lead within each.  ``--sf``
    orders only within these groups.
    """
    failed: Any = None
    known: Any = None
    if config.getoption("failedfirst", False):
        recorder = config.pluginmanager.get_plugin(LASTFAILED_PLUGIN)
        failed = getattr(recorder, "lastfailed", None)
    if config.getoption("newfirst", False):
        recorder = config.pluginmanager.get_plugin(NODEIDS_PLUGIN)
        known = getattr(recorder, "known", None)
    if failed is None and known is None:
        return lambda nodeid: 0

    def rank(nodeid: str) -> int:
        value = 0
        if known is not None and nodeid not in known:
            value -= 2
        if failed is not None and nodeid in failed:
            value -= 1
        return value

    return rank


class SlowFirstOrdering:
    """Reorders the collected items of a session that runs them itself.

    Registered after the ``--lf``/``--ff``/``--nf`` plugins, so its wrapper
    runs last, on their result.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.status: str | None = None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None]:
        result = yield
        if not items:
            return result
        recorded = recorded_durations(config)
        if not recorded:
            self.status = "no recorded durations yet, keeping the usual order"
            return result
        nodeids = [item.nodeid for item in items]
        estimates = estimate(nodeids, recorded, normalize=without_group)
        rank = rank_function(config)
        order = slowest_first(
            [scope_path(item) for item in items],
            estimates.seconds,
            [rank(nodeid) for nodeid in nodeids],
        )
        items[:] = [items[index] for index in order]
        self.status = (
            f"longest first, {estimates.known} of {len(items)} tests "
            "with recorded durations"
        )
        return result

    def pytest_report_collectionfinish(self) -> str | None:
        if self.status is not None and self.config.get_verbosity() >= 0:
            return f"slow-first: {self.status}"
        return None


def scope_path(item: pytest.Item) -> tuple[Hashable, ...]:
    """The scopes ``item`` shares fixtures with, outermost first.

    Directories, module and class by node id; after the session, each
    package, module and class, the indices of the parameters of fixtures
    of that scope, so tests with the same higher-scoped parameter stay
    together as pytest ordered them.
    """
    by_scope = _high_scope_params(item)
    path: list[Hashable] = []
    if by_scope.get("session"):
        path.append(("session", by_scope["session"]))
    for node in item.listchain()[1:-1]:
        path.append(node.nodeid)
        scope = (
            "class"
            if isinstance(node, pytest.Class)
            else "module"
            if isinstance(node, pytest.Module)
            else "package"
            if isinstance(node, pytest.Package)
            else None
        )
        if scope is not None and by_scope.get(scope):
            path.append((scope, by_scope[scope]))
    return tuple(path)


def _high_scope_params(item: pytest.Item) -> dict[str, tuple[tuple[str, int], ...]]:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return {}
    # pytest keeps each parameter's scope privately; without it every
    # parameter counts as function-scoped, which only loses grouping.
    scopes: Any = getattr(callspec, "_arg2scope", {})
    indices: Any = getattr(callspec, "indices", {})
    found: dict[str, list[tuple[str, int]]] = {}
    for name, index in sorted(indices.items()):
        scope = getattr(scopes.get(name), "value", None)
        if scope in HIGH_SCOPES:
            found.setdefault(scope, []).append((name, index))
    return {scope: tuple(params) for scope, params in found.items()}


class XdistSlowFirst:
    """On the xdist controller: provide the slowest-first scheduler."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_xdist_make_scheduler(
        self, config: pytest.Config, log: Any
    ) -> SlowFirstScheduling | None:
        from pytest_crosscache.scheduling.xdist_scheduler import SUPPORTED_DIST

        dist = config.getvalue("dist")
        if dist not in SUPPORTED_DIST:
            # "each" runs everything everywhere: there is nothing to balance.
            return None
        recorded = recorded_durations(config)
        if not recorded:
            # Nothing to go by: xdist's own scheduler, a plain run.
            return None
        from pytest_crosscache.scheduling.xdist_scheduler import SlowFirstScheduling

        return SlowFirstScheduling(
            config, log, recorded=recorded, rank=rank_function(config), dist=dist
        )
