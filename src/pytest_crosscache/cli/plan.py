"""The ``plan`` command: how the recorded suite would split into N shards."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING
from typing import Any

from pytest_crosscache.cli.format import dump
from pytest_crosscache.cli.target import CommandError
from pytest_crosscache.cli.target import Target

if TYPE_CHECKING:
    from pytest_crosscache.cli import AddCommand
    from pytest_crosscache.scheduling.plan import Forecast


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"invalid count {text!r}: use a whole number of 1 or more"
        )
    return value


def _seconds(value: float) -> str:
    if value >= 100:
        return f"{value:.0f} s"
    return f"{value:.1f} s" if value >= 10 else f"{value:.2f} s"


def cmd_plan(args: argparse.Namespace) -> int:
    from pytest_crosscache.history.store import recorded_durations_from_backend
    from pytest_crosscache.scheduling.plan import forecast

    backend = Target(args).backend
    try:
        durations = recorded_durations_from_backend(backend)
    except OSError as exc:
        raise CommandError(
            f"could not read the recorded durations from {backend.describe()}: {exc}"
        ) from None
    if not durations:
        raise CommandError(
            f"no recorded durations in {backend.describe()}: run the suite with "
            "pytest-crosscache once first"
        )
    result = forecast(durations, args.shards, top=args.top)
    if args.json:
        print(dump(_as_json(result)))
    else:
        _print(result)
    return 0


def _as_json(result: Forecast) -> dict[str, Any]:
    return {
        "shards": len(result.loads),
        "tests": sum(result.counts),
        "total": result.total,
        "lower_bound": result.lower_bound,
        "makespan": result.makespan,
        "loads": [
            {"shard": number, "tests": tests, "expected": load}
            for number, (tests, load) in enumerate(
                zip(result.counts, result.loads, strict=True), start=1
            )
        ],
        "longest": [
            {"nodeid": nodeid, "seconds": seconds} for nodeid, seconds in result.longest
        ],
        "useful_shards": _useful_shards(result),
    }


def _useful_shards(result: Forecast) -> int:
    """How many shards can still shorten the run: beyond it, the longest test rules."""
    longest = result.longest[0][1] if result.longest else 0.0
    if longest <= 0:
        return sum(result.counts)
    return max(1, math.floor(result.total / longest))


def _print(result: Forecast) -> None:
    shards = len(result.loads)
    tests = sum(result.counts)
    print(
        f"{shards} shard{'s' if shards != 1 else ''} for {tests} tests with recorded "
        f"durations ({_seconds(result.total)} in all)"
    )
    width = max(len(str(tests)), len("tests"))
    print(f"  shard  {'tests':>{width}}  expected")
    for number, (count, load) in enumerate(
        zip(result.counts, result.loads, strict=True), start=1
    ):
        print(f"  {number:>5}  {count:>{width}}  {_seconds(load):>8}")
    bound = result.lower_bound
    longest = result.longest[0][1] if result.longest else 0.0
    why = (
        "the longest test" if longest >= result.total / shards else f"total / {shards}"
    )
    ratio = result.makespan / bound if bound > 0 else 1.0
    print(
        f"slowest shard {_seconds(result.makespan)}; lower bound "
        f"{_seconds(bound)} ({why}): {ratio:.2f}x"
    )
    if result.longest:
        print("longest tests (share of a shard's time):")
        for nodeid, seconds in result.longest:
            share = seconds / bound if bound > 0 else 0.0
            print(f"  {_seconds(seconds):>9}  {share:>4.0%}  {nodeid}")
    useful = _useful_shards(result)
    if useful < shards:
        print(
            f"more than {useful} shard{'s' if useful != 1 else ''} cannot help: the "
            f"longest test takes {_seconds(longest)}; split it to go faster"
        )


def add_commands(add: AddCommand) -> None:
    """Add plan."""
    plan = add(
        "plan",
        cmd_plan,
        "show how the recorded tests would split into N shards (--shard K/N)",
    )
    plan.add_argument(
        "--shards",
        type=_count,
        required=True,
        metavar="N",
        help="number of shards (CI jobs) to plan for",
    )
    plan.add_argument(
        "--top",
        type=_count,
        default=10,
        metavar="K",
        help="how many of the longest tests to list (default 10)",
    )
    plan.add_argument("--json", action="store_true", help="print a JSON object")
