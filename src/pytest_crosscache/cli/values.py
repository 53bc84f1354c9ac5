"""Commands on stored values: show, get, set, clear and prune."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_crosscache import _json
from pytest_crosscache._keys import DIRS_DIR
from pytest_crosscache._keys import HISTORY_PREFIX
from pytest_crosscache._keys import hides_history
from pytest_crosscache._keys import strict_key
from pytest_crosscache.cli.format import dump
from pytest_crosscache.cli.format import format_age
from pytest_crosscache.cli.format import format_size
from pytest_crosscache.cli.format import parse_duration
from pytest_crosscache.cli.format import print_table
from pytest_crosscache.cli.target import CommandError
from pytest_crosscache.cli.target import Target
from pytest_crosscache.cli.target import decode
from pytest_crosscache.cli.target import sorted_keys
from pytest_crosscache.fs.paths import files_below

if TYPE_CHECKING:
    from pytest_crosscache.cli import AddCommand


def _files_below(cachedir: Path, glob: str) -> list[str]:
    """The files below ``d/`` matching ``glob``, relative to ``d/``, sorted."""
    if not (cachedir / DIRS_DIR).is_dir():
        return []
    return sorted(files_below(cachedir, DIRS_DIR, glob), key=lambda n: n.split("/"))


def cmd_show(args: argparse.Namespace) -> int:
    target = Target(args)
    backend = target.backend
    now = time.time()
    rows: list[tuple[str, int | None, float | None, bool, Any]] = []
    hidden: list[int] = []
    for key in sorted_keys(backend, args.glob):
        data = backend.read(key)
        if key.startswith(f"{HISTORY_PREFIX}/") and hides_history(args.glob):
            hidden.append(len(data or b""))
            continue
        modified = backend.modified(key)
        if data is None:  # removed while we looked
            continue
        readable, value = decode(data)
        rows.append((key, len(data), modified, readable, value))
    if args.json:
        out: dict[str, dict[str, Any]] = {}
        for key, size, modified, readable, value in rows:
            entry: dict[str, Any] = {"value": value, "size": size}
            entry["modified"] = modified
            entry["age"] = None if modified is None else round(now - modified, 3)
            if not readable:
                entry["error"] = "not valid JSON"
            out[key] = entry
        print(dump(out))
        return 0
    print(f"cachedir: {target.cachedir}")
    if backend.describe() != str(target.cachedir):
        print(f"values in: {backend.describe()}")
    table = [
        (
            key + ("" if readable else "  (not valid JSON)"),
            format_size(size or 0),
            "-" if modified is None else format_age(now - modified),
        )
        for key, size, modified, readable, _ in rows
    ]
    files = _files_below(target.cachedir, args.glob)
    for name in files:
        try:
            stat = (target.cachedir / DIRS_DIR / name).stat()
        except OSError:
            continue  # removed while we looked
        table.append(
            (
                f"{DIRS_DIR}/{name}",
                format_size(stat.st_size),
                format_age(now - stat.st_mtime),
            )
        )
    if not table and not hidden:
        print(
            f"no values match {args.glob!r}" if args.glob != "*" else "cache is empty"
        )
        return 0
    if table:
        print_table(("KEY", "SIZE", "AGE"), table)
    if hidden:
        print(
            f"(and the test history: {len(hidden)} values, "
            f"{format_size(sum(hidden))}; crosscache show 'history/**/*' lists them)"
        )
    noun = "value" if len(rows) == 1 else "values"
    summary = f"{len(rows)} {noun}"
    if files:
        summary += f", {len(files)} file{'s' if len(files) != 1 else ''} in d/"
    print(summary)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    key = strict_key(args.key)
    backend = Target(args).backend
    data = backend.read(key)
    if data is None:
        raise CommandError(f"no value stored under key {key!r} in {backend.describe()}")
    readable, value = decode(data)
    if not readable:
        raise CommandError(
            f"the value of key {key!r} is not valid JSON ({backend.location(key)})"
        )
    print(dump(value))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    key = strict_key(args.key)
    text = sys.stdin.read() if args.json == "-" else args.json
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"invalid JSON for key {key!r}: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno} (char {exc.pos})",
            2,
        ) from None
    except RecursionError:
        raise CommandError(
            f"the JSON for key {key!r} is nested too deeply for Python's JSON "
            f"decoder (about {sys.getrecursionlimit()} levels at most)",
            2,
        ) from None
    data = _json.encode(key, value)
    backend = Target(args).backend
    try:
        backend.write(key, data)
    except OSError as exc:
        raise CommandError(f"could not store key {key!r}: {exc}") from None
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    target = Target(args)
    backend = target.backend
    try:
        if args.glob is None:
            # Like pytest --cache-clear: every value and every d/ directory.
            backend.clear()
            from pytest_crosscache.backends.directory import remove_tree

            # A link planted as d/ goes, never what it points to.
            with contextlib.suppress(FileNotFoundError):
                remove_tree(target.cachedir / DIRS_DIR)
            print(f"cleared {target.cachedir}")
            return 0
        removed = sum(backend.delete(key) for key in sorted_keys(backend, args.glob))
    except OSError as exc:
        raise CommandError(f"could not clear {backend.describe()}: {exc}") from None
    print(f"removed {removed} value{'s' if removed != 1 else ''}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    backend = Target(args).backend
    cutoff = time.time() - args.older_than
    removed = 0
    for key in sorted_keys(backend, args.glob):
        modified = backend.modified(key)
        if modified is None or modified >= cutoff:
            continue
        try:
            if not args.dry_run and not backend.delete(key):
                continue
        except OSError as exc:
            raise CommandError(f"could not remove key {key!r}: {exc}") from None
        print(key)
        removed += 1
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {removed} value{'s' if removed != 1 else ''}")
    return 0


def parse_duration_arg(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_commands(add: AddCommand) -> None:
    """Add show, get, set, clear and prune."""
    show = add("show", cmd_show, "list the stored values (key, size, age)")
    show.add_argument(
        "glob", nargs="?", default="*", metavar="GLOB", help="keys to show (default *)"
    )
    show.add_argument(
        "--json",
        action="store_true",
        help="print a JSON object mapping each key to its value and metadata",
    )

    get = add("get", cmd_get, "print the value of KEY as JSON")
    get.add_argument("key", metavar="KEY")

    set_ = add("set", cmd_set, "store JSON text under KEY")
    set_.add_argument("key", metavar="KEY")
    set_.add_argument("json", metavar="JSON", help="the value; '-' reads stdin")

    clear = add(
        "clear", cmd_clear, "remove the values matching GLOB (everything if omitted)"
    )
    clear.add_argument("glob", nargs="?", metavar="GLOB")

    prune = add("prune", cmd_prune, "remove values not written for a while")
    prune.add_argument(
        "--older-than",
        required=True,
        type=parse_duration_arg,
        metavar="DURATION",
        help="e.g. 45s, 30m, 12h, 7d or 1h30m",
    )
    prune.add_argument("glob", nargs="?", default="*", metavar="GLOB")
    prune.add_argument(
        "-n", "--dry-run", action="store_true", help="only list what would go"
    )
