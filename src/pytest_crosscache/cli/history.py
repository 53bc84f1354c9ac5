"""The test-history commands: history, slowest, flaky and durations."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_crosscache.cli.format import dump
from pytest_crosscache.cli.target import PROG
from pytest_crosscache.cli.target import CommandError
from pytest_crosscache.cli.target import Target

if TYPE_CHECKING:
    from pytest_crosscache.backends.protocol import Backend
    from pytest_crosscache.cli import AddCommand
    from pytest_crosscache.history.model import History

#: ``durations --import`` refuses bigger files.
MAX_IMPORT_BYTES = 200 * 1024 * 1024
DEFAULT_SLOWEST = 10


def _warn(problem: str) -> None:
    print(f"{PROG}: warning: damaged test history: {problem}", file=sys.stderr)


def _load(backend: Backend, nodeids: list[str] | None = None) -> History:
    from pytest_crosscache.history.store import load_history_from_backend

    return load_history_from_backend(backend, nodeids, on_damage=_warn)


def _when(started: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(started))


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}s" if value < 10 else f"{value:.1f}s"


# --- history ----------------------------------------------------------------


def _matching(history: History, pattern: str) -> list[str]:
    if pattern in history.tests:
        return [pattern]
    found = [nodeid for nodeid in history.tests if fnmatchcase(nodeid, pattern)]
    if not found:
        # A file or class: everything below it.
        prefix = pattern.rstrip(":") + "::"
        found = [nodeid for nodeid in history.tests if nodeid.startswith(prefix)]
    return sorted(found)


def cmd_history(args: argparse.Namespace) -> int:
    from pytest_crosscache.history.flaky import verdict
    from pytest_crosscache.history.outcomes import NAMES

    backend = Target(args).backend
    pattern: str = args.pattern
    history = _load(backend, [pattern])
    if pattern not in history.tests:
        history = _load(backend)
    nodeids = _matching(history, pattern)
    entries: list[dict[str, Any]] = []
    for nodeid in nodeids:
        test = history.tests[nodeid]
        judged = verdict(test, history.runs)
        runs = []
        for letter, seconds, run_id in zip(
            test.outcomes, test.durations, test.run_ids, strict=True
        ):
            run = history.runs.get(run_id)
            runs.append(
                {
                    "run": run_id,
                    "started": None if run is None else run.started,
                    "revision": None if run is None else run.revision,
                    "ci": None if run is None else run.ci,
                    "outcome": NAMES.get(letter, letter),
                    "duration": seconds,
                }
            )
        entries.append(
            {
                "nodeid": nodeid,
                "runs": len(test.outcomes),
                "outcomes": test.outcomes,
                "median_duration": test.median_duration(),
                "status": judged.status,
                "evidence": judged.evidence,
                "history": runs,
            }
        )
    if args.json:
        print(dump(entries))
    elif not entries:
        print(f"no recorded runs of tests matching {pattern!r}")
    for entry in [] if args.json else entries:
        print(
            f"{entry['nodeid']}: {entry['runs']} runs, median "
            f"{_seconds(entry['median_duration'])}, {entry['status']} "
            f"({entry['evidence']})"
        )
        for run in reversed(entry["history"]):
            when = "?" if run["started"] is None else _when(run["started"])
            revision = (run["revision"] or "-")[:12]
            where = "CI" if run["ci"] else "local"
            print(
                f"  {when}  {revision:<12}  {where:<5}  {run['outcome']:<15}  "
                f"{_seconds(run['duration'])}"
            )
    return 0 if entries else 1


# --- slowest ----------------------------------------------------------------


def cmd_slowest(args: argparse.Namespace) -> int:
    from pytest_crosscache.history.store import recorded_durations_from_backend

    if args.n < 1:
        raise CommandError(f"-n must be at least 1, got {args.n}", 2)
    backend = Target(args).backend
    durations = recorded_durations_from_backend(backend, on_damage=_warn)
    slowest = sorted(durations.items(), key=lambda item: (-item[1], item[0]))[: args.n]
    if args.json:
        print(dump([{"nodeid": n, "duration": d} for n, d in slowest]))
        return 0
    if not slowest:
        print("no test durations recorded")
        return 0
    for nodeid, seconds in slowest:
        print(f"{_seconds(seconds):>9}  {nodeid}")
    return 0


# --- flaky ------------------------------------------------------------------


def cmd_flaky(args: argparse.Namespace) -> int:
    from pytest_crosscache.history.flaky import FLAKY
    from pytest_crosscache.history.flaky import classify

    backend = Target(args).backend
    history = _load(backend)
    verdicts = [v for v in classify(history).values() if args.all or v.status == FLAKY]
    verdicts.sort(key=lambda v: (-v.failures, v.nodeid))
    if args.json:
        print(
            dump(
                [
                    {
                        "nodeid": v.nodeid,
                        "status": v.status,
                        "evidence": v.evidence,
                        "flips": v.flips,
                        "failures": v.failures,
                        "runs": v.runs,
                    }
                    for v in verdicts
                ]
            )
        )
        return 0
    if not verdicts:
        tests = len(history.tests)
        print(f"no flaky tests among {tests} with recorded runs")
        return 0
    for v in verdicts:
        shown = f"{v.status}: " if args.all else ""
        print(f"{v.nodeid}\n  {shown}{v.evidence}")
    return 0


# --- durations --------------------------------------------------------------


def cmd_durations(args: argparse.Namespace) -> int:
    if args.import_file is not None:
        return _import(args, Path(args.import_file))
    return _export(args, args.export)


def _export(args: argparse.Namespace, destination: str) -> int:
    from pytest_crosscache.history.store import recorded_durations_from_backend

    backend = Target(args).backend
    durations = recorded_durations_from_backend(backend, on_damage=_warn)
    # pytest-split's own layout: sorted keys, four spaces.
    text = json.dumps(durations, sort_keys=True, indent=4) + "\n"
    if destination == "-":
        sys.stdout.write(text)
        return 0
    from pytest_crosscache.fs.atomic import atomic_write

    path = Path(destination)
    try:
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise CommandError(f"could not write {destination!r}: {exc}", 1) from None
    print(f"wrote {len(durations)} test durations to {destination}")
    return 0


def _import(args: argparse.Namespace, path: Path) -> int:
    from pytest_crosscache.history.store import import_durations

    target = Target(args)
    data = _read_bounded(path)
    if data.lstrip()[:1] == b"<":
        durations, unmatched = _from_junit(path, data, target.project.rootdir)
    else:
        durations, unmatched = _from_pytest_split(path, data), 0
    try:
        imported = import_durations(target.backend, durations, on_damage=_warn)
    except OSError as exc:
        raise CommandError(f"could not store the durations: {exc}", 1) from None
    measured = len(durations) - imported
    print(
        f"imported {imported} test durations from {path}"
        + (f"; {measured} tests kept their measured durations" if measured else "")
    )
    if unmatched:
        print(
            f"{PROG}: warning: {path}: {unmatched} test cases matched no test "
            "file under the rootdir and were left out",
            file=sys.stderr,
        )
    return 0


def _read_bounded(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {str(path)!r}: {exc}", 2) from None
    if len(data) > MAX_IMPORT_BYTES:
        raise CommandError(
            f"{path}: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB; "
            "not a durations file",
            2,
        )
    return data


def _duration(path: Path, where: str, value: object) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return float(value)
    raise CommandError(
        f"{path}: {where}: duration {value!r} is not a number of seconds >= 0", 2
    )


def _from_pytest_split(path: Path, data: bytes) -> dict[str, float]:
    """pytest-split's ``.test_durations``: ``{nodeid: seconds}`` (or old pairs)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CommandError(
            f"{path}: neither JUnit XML nor pytest-split JSON: {exc}", 2
        ) from None
    if isinstance(value, list):
        # pytest-split before 0.3: a list of [nodeid, seconds] pairs.
        pairs = []
        for position, item in enumerate(value):
            if not (isinstance(item, list) and len(item) == 2):
                raise CommandError(
                    f"{path}: entry {position} is not a [node id, seconds] pair", 2
                )
            pairs.append((item[0], item[1]))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise CommandError(
            f"{path}: expected a JSON object of node id -> seconds, found "
            f"{type(value).__name__}",
            2,
        )
    durations: dict[str, float] = {}
    for nodeid, seconds in pairs:
        if not isinstance(nodeid, str) or not nodeid:
            raise CommandError(f"{path}: node id {nodeid!r} is not a string", 2)
        durations[nodeid] = _duration(path, repr(nodeid), seconds)
    return durations


def _from_junit(path: Path, data: bytes, rootdir: Path) -> tuple[dict[str, float], int]:
    """JUnit XML (pytest's ``--junitxml`` and most CI tools'): testcase times."""
    import xml.etree.ElementTree as ET

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: JUnit XML that is not UTF-8: {exc}", 2) from None
    # No document type declarations: they are where entity expansion bombs
    # and external entities live, and JUnit reports never need them.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise CommandError(
            f"{path}: XML with a document type declaration (<!DOCTYPE or "
            "<!ENTITY) is refused",
            2,
        )
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CommandError(f"{path}: invalid XML: {exc}", 2) from None
    if root.tag not in ("testsuites", "testsuite"):
        raise CommandError(
            f"{path}: not a JUnit report: the root element is <{root.tag}>, "
            "expected <testsuites> or <testsuite>",
            2,
        )
    durations: dict[str, float] = {}
    unmatched = 0
    files: dict[str, str | None] = {}
    for number, case in enumerate(root.iter("testcase"), 1):
        name = case.get("name")
        if not name:
            raise CommandError(f"{path}: testcase #{number} has no name", 2)
        seconds = _duration(path, f"testcase {name!r}", case.get("time", "0"))
        nodeid = _junit_nodeid(
            case.get("classname") or "", name, case.get("file"), rootdir, files
        )
        if nodeid is None:
            unmatched += 1
            continue
        durations[nodeid] = seconds
    return durations, unmatched


def _junit_nodeid(
    classname: str,
    name: str,
    file: str | None,
    rootdir: Path,
    modules: dict[str, str | None],
) -> str | None:
    """The pytest node id of a JUnit test case, or ``None`` if no file matches.

    pytest writes ``classname`` as the node id's path with ``/`` turned into
    ``.`` and ``.py`` dropped, followed by the classes: which dots were
    slashes is found by looking for the test file below the rootdir.
    """
    parts = [part for part in classname.split(".") if part]
    if file:
        module = file.replace("\\", "/")
        depth = len(Path(module).with_suffix("").parts)
        return "::".join([module, *parts[depth:], name])
    for cut in range(len(parts), 0, -1):
        dotted = ".".join(parts[:cut])
        if dotted not in modules:
            candidate = "/".join(parts[:cut]) + ".py"
            modules[dotted] = candidate if (rootdir / candidate).is_file() else None
        module_path = modules[dotted]
        if module_path is not None:
            return "::".join([module_path, *parts[cut:], name])
    return None


def add_commands(add: AddCommand) -> None:
    """Add history, slowest, flaky and durations."""
    history = add(
        "history",
        cmd_history,
        "show the recorded runs of the tests matching NODEID-OR-GLOB",
    )
    history.add_argument(
        "pattern",
        metavar="NODEID-OR-GLOB",
        help="a node id, a glob of node ids ('tests/test_a.py::*'), or a file",
    )
    history.add_argument("--json", action="store_true", help="print a JSON list")

    slowest = add(
        "slowest", cmd_slowest, "list the tests with the longest typical durations"
    )
    slowest.add_argument(
        "-n",
        type=int,
        default=DEFAULT_SLOWEST,
        metavar="N",
        help=f"how many (default {DEFAULT_SLOWEST})",
    )
    slowest.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of {nodeid, duration}, slowest first",
    )

    flaky = add(
        "flaky",
        cmd_flaky,
        "list the tests that passed and failed on the same code",
    )
    flaky.add_argument(
        "--all",
        action="store_true",
        help="list every test with its status (flaky, failing, fixed, ...)",
    )
    flaky.add_argument("--json", action="store_true", help="print a JSON list")

    durations = add(
        "durations",
        cmd_durations,
        "import test durations (pytest-split, JUnit XML) or export them "
        "in pytest-split's format",
    )
    which = durations.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--import",
        dest="import_file",
        metavar="FILE",
        help="a pytest-split .test_durations file or a JUnit XML report",
    )
    which.add_argument(
        "--export",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write pytest-split's .test_durations format (default: stdout)",
    )
