"""The ``report`` command: the test history as one self-contained HTML page."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_crosscache.cli.format import format_size
from pytest_crosscache.cli.target import CommandError
from pytest_crosscache.cli.target import Target

if TYPE_CHECKING:
    from pytest_crosscache.cli import AddCommand


def cmd_report(args: argparse.Namespace) -> int:
    # Imported here: the other commands need none of this.
    from pytest_crosscache.fs.atomic import atomic_write
    from pytest_crosscache.history.flaky import classify
    from pytest_crosscache.history.store import load_history_from_backend
    from pytest_crosscache.history.store import recorded_durations_from_backend
    from pytest_crosscache.report.data import build_report
    from pytest_crosscache.report.html import render
    from pytest_crosscache.scheduling.plan import ShardPlan

    target = Target(args)
    backend = target.backend
    damage: list[str] = []
    try:
        history = load_history_from_backend(backend, on_damage=damage.append)
        # The medians the store keeps: no need to compute 50,000 of them.
        durations = recorded_durations_from_backend(backend, on_damage=damage.append)
    except OSError as exc:
        raise CommandError(
            f"cannot read the history from {backend.describe()}: {exc}"
        ) from None
    for problem in damage:
        print(f"crosscache: warning: {problem}", file=sys.stderr)
    jobs = None
    if args.shards:
        # The split `crosscache plan` and `pytest --shard K/N` make.
        nodeids = sorted(durations)
        seconds = [durations[nodeid] for nodeid in nodeids]
        jobs = ShardPlan.build(nodeids, seconds, args.shards).tests
    source = backend.describe()
    # A page published from CI shows where the cache was, not the runner's
    # home directory.
    with contextlib.suppress(ValueError):
        source = str(Path(source).relative_to(Path.cwd()))
    report = build_report(
        history,
        verdicts=classify(history),
        jobs=jobs,
        durations=durations,
        title=args.title or f"Test history of {target.project.rootdir.name}",
        source=source,
        generated=time.time(),
        top=args.top,
    )
    page = render(report).encode("utf-8")
    if args.html == "-":
        sys.stdout.buffer.write(page)
        return 0
    path = Path(args.html)
    try:
        atomic_write(path, page)
    except OSError as exc:
        raise CommandError(f"cannot write the report to {path}: {exc}") from None
    summary = report.summary
    flaky = f", {summary.flaky:,} flaky" if summary.flaky is not None else ""
    print(
        f"wrote {path} ({format_size(len(page))}): {summary.tests:,} tests, "
        f"{summary.runs:,} runs, {summary.failing:,} failing now{flaky}"
    )
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of 1 or more, not {text!r}"
        )
    return value


def _shards(text: str) -> int:
    if text.strip() == "0":
        return 0
    return _positive(text)


def add_commands(add: AddCommand) -> None:
    """Add report."""
    report = add(
        "report",
        cmd_report,
        "write the test history as one self-contained HTML page: flaky, failing "
        "and slowest tests, and a shard plan",
    )
    report.add_argument(
        "--html",
        required=True,
        metavar="PATH",
        help="write the page here ('-' for standard output); it loads nothing "
        "from anywhere when opened",
    )
    report.add_argument(
        "--shards",
        type=_shards,
        default=4,
        metavar="N",
        help="draw the plan for N parallel jobs (default: 4; 0 leaves it out)",
    )
    report.add_argument(
        "--top",
        type=_positive,
        default=50,
        metavar="N",
        help="rows per section; the rest are counted (default: 50)",
    )
    report.add_argument(
        "--title", metavar="TEXT", help="the page's title (default: the project's name)"
    )
