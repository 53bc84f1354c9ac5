"""The ``--sf``, ``--shard`` and ``--shard-key`` options.

Registered as the plugin ``crosscache-scheduling`` at pytest start-up, so
it stays small: the planners are imported, and their plugins registered,
only in sessions that ask for them.
"""

from __future__ import annotations

import argparse
import re

import pytest

from pytest_crosscache._xdist import has_xdist
from pytest_crosscache._xdist import is_xdist_worker

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``; argparse reports errors."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid shard {text!r}: use K/N, this job's part K (counted from 1) "
            "of N parts, for example 2/4"
        )
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(
            f"invalid shard {text!r}: K must be between 1 and N ({count})"
        )
    return index, count


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("general")
    group.addoption(
        "--sf",
        "--slow-first",
        action="store_true",
        default=False,
        dest="slowfirst",
        help="Run the tests with the longest recorded durations first; with "
        "xdist (-n), schedule them so that workers finish together. Keeps "
        "the groups of --ff/--lf/--nf",
    )
    group.addoption(
        "--shard",
        action="store",
        type=parse_shard,
        default=None,
        dest="shard",
        metavar="K/N",
        help="Run only part K of N parts of the selected tests, balanced by "
        "recorded duration; the parts of one CI pipeline never overlap",
    )
    group.addoption(
        "--shard-key",
        action="store",
        default=None,
        dest="shard_key",
        metavar="KEY",
        help="Pin the --shard plan under this name, shared by the N jobs of one "
        "pipeline (default: the CI's run id, e.g. $GITHUB_RUN_ID)",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # trylast: after the --lf/--ff/--nf plugins are registered, so that the
    # slowest-first wrapper, registered later, runs on their result.
    manager = config.pluginmanager
    worker = is_xdist_worker(config)
    with_xdist = has_xdist(config)
    shard = config.getoption("shard", None)
    if shard is not None:
        from pytest_crosscache.scheduling import shard as sharding

        manager.register(sharding.ShardSelection(config, shard), "crosscache-shard")
        if with_xdist and not worker:
            manager.register(
                sharding.XdistShardSummary(config, shard), "crosscache-shard-xdist"
            )
    if config.getoption("slowfirst", False) and not worker:
        # Workers keep pytest's order: the controller's scheduler decides.
        from pytest_crosscache.scheduling import slowfirst

        manager.register(slowfirst.SlowFirstOrdering(config), "crosscache-slowfirst")
        if with_xdist:
            manager.register(
                slowfirst.XdistSlowFirst(config), "crosscache-slowfirst-xdist"
            )
