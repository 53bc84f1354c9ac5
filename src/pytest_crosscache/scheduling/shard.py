"""``--shard K/N``: run one part of the suite, the parts balanced by recorded duration.

The N jobs of a pipeline must agree on the parts even when they start at
different times while other pipelines (or their own earlier shards) record
new durations.  So the plan is pinned: the first job to plan stores it
under a key derived from the pipeline's identity (``--shard-key``, else the
CI's run id), with a create-only :meth:`Cache.update`, and every later job
reads it.  A test the plan does not know goes to a shard by a stable hash.

Under xdist the workers collect, so a worker may be the one that stores the
plan: the one exception to "workers never write shared state", safe
because the write only ever creates the value, under its lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache._xdist import is_xdist_worker
from pytest_crosscache.cache import Cache
from pytest_crosscache.scheduling.durations import recorded_durations
from pytest_crosscache.scheduling.estimate import Estimates
from pytest_crosscache.scheduling.estimate import estimate
from pytest_crosscache.scheduling.estimate import without_group
from pytest_crosscache.scheduling.plan import InvalidPlan
from pytest_crosscache.scheduling.plan import ShardPlan

#: Where pinned plans are stored, one value per pipeline and shard count.
PLANS_PREFIX = "crosscache/shard-plans"
#: Pinned plans older than this are removed by later sessions.
PLAN_MAX_AGE = 7 * 86400.0

#: Environment variables that identify one CI pipeline run, shared by all its
#: jobs, and kept when a failed job is retried (so a retried shard gets the
#: same tests).  GitHub's GITHUB_RUN_ATTEMPT is left out on purpose: "re-run
#: failed jobs" increments it, and a new plan would give the retried shard
#: other tests than the one that failed.
CI_RUN_VARIABLES = (
    "GITHUB_RUN_ID",  # GitHub Actions
    "CI_PIPELINE_ID",  # GitLab CI
    "CIRCLE_WORKFLOW_ID",  # CircleCI
    "BUILDKITE_BUILD_ID",  # Buildkite
    "BUILD_BUILDID",  # Azure Pipelines
    "BUILD_TAG",  # Jenkins
)


def pipeline_identity(
    given: str | None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """What the jobs of one pipeline share: ``--shard-key``, else the CI's run id."""
    if given:
        return f"key={given}"
    for name in CI_RUN_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return f"{name}={value}"
    return None


def plan_key(identity: str, shards: int, config: pytest.Config) -> str:
    """The key of a pipeline's plan for ``shards`` parts of this selection.

    Besides the identity it covers what selects the tests (the paths given
    and ``-k``/``-m``), so two differently selected sharded runs in one
    pipeline get one plan each.
    """
    material = json.dumps(
        [
            identity,
            shards,
            [_relative_arg(arg, config.rootpath) for arg in config.args],
            config.getoption("keyword", "") or "",
            config.getoption("markexpr", "") or "",
        ]
    )
    digest = hashlib.sha256(material.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{PLANS_PREFIX}/{digest[:24]}"


def _relative_arg(arg: str, rootpath: Path) -> str:
    # Runners may check the project out at different absolute paths.
    path, sep, rest = arg.partition("::")
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(rootpath):
        path = candidate.relative_to(rootpath).as_posix()
    return f"{path}{sep}{rest}"


def describe_seconds(seconds: float) -> str:
    if seconds >= 120:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest} s"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    return f"{seconds:.1f} s"


def summary(index: int, count: int, tests: int, estimates: Estimates | None) -> str:
    """The line ``shard K/N: M tests, about T s expected``."""
    noun = "test" if tests == 1 else "tests"
    head = f"shard {index}/{count}: {tests} {noun}"
    if estimates is None or not estimates.known:
        return f"{head} (no recorded durations yet: parts balanced by count)"
    return f"{head}, about {describe_seconds(estimates.total)} expected"


class ShardSelection:
    """Deselects the tests of the other shards."""

    def __init__(self, config: pytest.Config, shard: tuple[int, int]) -> None:
        self.config = config
        self.index, self.count = shard
        self.identity = pipeline_identity(config.getoption("shard_key", None))
        self.key = (
            plan_key(self.identity, self.count, config) if self.identity else None
        )
        self.status: str | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        # trylast: after -k, -m and --deselect, so that all shards plan the
        # same selection.
        cache = Cache.for_config(config)
        recorded = recorded_durations(config)
        nodeids = [item.nodeid for item in items]
        estimates = estimate(nodeids, recorded, normalize=without_group)
        plan = self._plan(cache, nodeids, estimates.seconds)
        mine = self.index - 1
        keep: list[pytest.Item] = []
        kept_seconds: list[float] = []
        others: list[pytest.Item] = []
        for item, seconds in zip(items, estimates.seconds, strict=True):
            if plan.shard_of(item.nodeid) == mine:
                keep.append(item)
                kept_seconds.append(seconds)
            else:
                others.append(item)
        if others:
            items[:] = keep
            config.hook.pytest_deselected(items=others)
        mine_estimates = Estimates(tuple(kept_seconds), estimates.known)
        self.status = summary(
            self.index, self.count, len(keep), mine_estimates if recorded else None
        )

    def _plan(
        self, cache: Cache, nodeids: Sequence[str], seconds: Sequence[float]
    ) -> ShardPlan:
        def fresh() -> ShardPlan:
            return ShardPlan.build(nodeids, seconds, self.count, created=time.time())

        key = self.key
        if key is None:
            # Nothing shared to pin it to: every job plans from what it reads.
            return fresh()
        with shown_not_raised():
            stored = self._valid(cache.get(key, None), key, warn=True)
            if stored is not None:
                return stored
            planned = fresh()

            def keep_first(current: Any) -> Any:
                # Create-only: a plan another job stored meanwhile wins.
                if self._valid(current, key, warn=False) is not None:
                    return current
                return planned.to_json()

            value = cache.update(key, keep_first, None)
            return self._valid(value, key, warn=False) or planned

    def _valid(self, value: object, key: str, *, warn: bool) -> ShardPlan | None:
        if value is None:
            return None
        try:
            plan = ShardPlan.from_json(value)
            if plan.shards != self.count:
                raise InvalidPlan(f"made for {plan.shards} shards, not {self.count}")
        except InvalidPlan as exc:
            if warn:
                warn_cache(f"ignoring the shard plan {key!r}: {exc}; planning anew")
            return None
        return plan

    def pytest_report_collectionfinish(self) -> list[str] | None:
        if self.status is None or self.config.get_verbosity() < 0:
            return None
        lines = [self.status]
        if self.config.get_verbosity() > 0:
            lines.append(pinning(self.identity, self.key))
        return lines

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.key is not None and not is_xdist_worker(self.config):
            with shown_not_raised():
                prune_plans(Cache.for_config(self.config), keep=self.key)


def pinning(identity: str | None, key: str | None) -> str:
    if identity is None or key is None:
        return (
            "shard plan: not pinned (no --shard-key and no CI run id): "
            "computed from the durations recorded now"
        )
    return f"shard plan: pinned by {identity} under {key!r}"


def prune_plans(cache: Cache, *, keep: str, now: float | None = None) -> int:
    """Remove pinned plans older than :data:`PLAN_MAX_AGE`; returns how many."""
    backend = cache.backend
    cutoff = (time.time() if now is None else now) - PLAN_MAX_AGE
    removed = 0
    try:
        for key in list(backend.keys(f"{PLANS_PREFIX}/*")):
            if key == keep or not key.startswith(f"{PLANS_PREFIX}/"):
                continue
            written = backend.modified(key)
            if written is not None and written < cutoff and backend.delete(key):
                removed += 1
    except OSError as exc:
        warn_cache(f"could not remove old shard plans in {backend.describe()}: {exc}")
    return removed


class XdistShardSummary:
    """On the xdist controller: say what this shard runs once a worker collected."""

    def __init__(self, config: pytest.Config, shard: tuple[int, int]) -> None:
        self.config = config
        self.index, self.count = shard
        self.shown = False

    def pytest_xdist_node_collection_finished(
        self, node: object, ids: Sequence[str]
    ) -> None:
        if self.shown or self.config.get_verbosity() < 0:
            return
        self.shown = True
        recorded = recorded_durations(self.config)
        estimates = None
        if recorded:
            estimates = estimate(ids, recorded, normalize=without_group)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(summary(self.index, self.count, len(ids), estimates))
