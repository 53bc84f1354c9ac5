"""The ``crosscache`` command: look at and tend a project's pytest cache.

It works on the cache directory pytest would use, found the way pytest
finds it, without starting a pytest session (and without importing pytest,
which would cost more than any of its commands).  Exit status: 0 on
success, 1 when what was asked for is not there (an unknown key, no
record), 2 for usage errors (bad arguments, invalid keys, invalid JSON, a
malformed configuration file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_crosscache import _json
from pytest_crosscache._discovery import Project
from pytest_crosscache._discovery import locate
from pytest_crosscache._durations import format_age
from pytest_crosscache._durations import format_size
from pytest_crosscache._durations import parse_duration
from pytest_crosscache._keys import normalize_key
from pytest_crosscache._paths import files_below
from pytest_crosscache._version import __version__
from pytest_crosscache.backends.redis_hooks import BACKEND_ENV
from pytest_crosscache.backends.redis_hooks import BACKEND_INI
from pytest_crosscache.backends.redis_hooks import NAMESPACE_INI
from pytest_crosscache.backends.redis_hooks import default_namespace

if TYPE_CHECKING:
    from pytest_crosscache.backends.protocol import Backend

PROG = "crosscache"
LASTFAILED_KEY = "cache/lastfailed"
DIRS_DIR = "d"

LOCK_TIMEOUT_INI = "cache_lock_timeout"


class CommandError(Exception):
    """Ends the command with a message on stderr and an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class Target:
    """The cache a command works on: its local directory and its backend."""

    def __init__(self, args: argparse.Namespace) -> None:
        cwd = Path.cwd()
        # Discovery runs even with --cache-dir: the configuration file also
        # says which backend, namespace and lock timeout the project uses.
        self.project = locate(
            cwd,
            rootdir=getattr(args, "rootdir", None),
            config_file=getattr(args, "config_file", None),
        )
        given = getattr(args, "cache_dir", None)
        if given:
            expanded = os.path.expandvars(os.path.expanduser(given))
            self.cachedir = Path(os.path.normpath(cwd / expanded))
        else:
            self.cachedir = self.project.cache_dir()
        self.backend = open_backend(
            self.cachedir, self.project, getattr(args, "backend", None)
        )


def open_backend(cachedir: Path, project: Project, url: str | None) -> Backend:
    """The backend holding the values of ``cachedir``: every command opens it here.

    As in a pytest session, ``url`` (``--backend``) wins over the
    ``PYTEST_CACHE_BACKEND`` environment variable, which wins over the
    ``cache_backend`` ini setting; with none of them, values are the files
    below ``cachedir``.
    """
    from pytest_crosscache.backends.directory import DEFAULT_LOCK_TIMEOUT
    from pytest_crosscache.backends.directory import DirectoryBackend

    raw = project.setting(LOCK_TIMEOUT_INI)
    try:
        timeout = DEFAULT_LOCK_TIMEOUT if raw is None else float(raw)
    except ValueError:
        timeout = -1.0
    if not timeout >= 0:  # also refuses NaN
        raise CommandError(
            f"{LOCK_TIMEOUT_INI} must be a number of seconds >= 0, got {raw!r}", 2
        )
    url = (
        url
        or os.environ.get(BACKEND_ENV)
        or os.path.expandvars(project.setting(BACKEND_INI) or "")
    ).strip()
    if not url:
        return DirectoryBackend(cachedir, lock_timeout=timeout)

    import importlib.util

    # Imported only now: most projects keep their values in the directory.
    from pytest_crosscache.backends.redis import RedisBackend

    if importlib.util.find_spec("redis") is None:
        raise CommandError(
            "the cache backend needs redis-py: pip install 'pytest-crosscache[redis]'",
            2,
        )
    namespace = os.path.expandvars(project.setting(NAMESPACE_INI) or "").strip()
    return RedisBackend.from_url(
        url,
        namespace=namespace or default_namespace(project.rootdir),
        cachedir=cachedir,
        lock_timeout=timeout,
    )


def _sorted_keys(backend: Backend, glob: str) -> list[str]:
    # Segment by segment, as pytest --cache-show sorts ("a/b" before "a-b").
    return sorted(set(backend.keys(glob)), key=lambda key: key.split("/"))


def _decode(data: bytes) -> tuple[bool, Any]:
    try:
        return True, _json.decode(data)
    except (ValueError, RecursionError):
        return False, None


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _files_below(base: Path, glob: str) -> list[Path]:
    if not base.is_dir():
        return []
    return sorted(set(files_below(base, glob)))


def cmd_show(args: argparse.Namespace) -> int:
    target = Target(args)
    backend = target.backend
    now = time.time()
    rows: list[tuple[str, int | None, float | None, bool, Any]] = []
    for key in _sorted_keys(backend, args.glob):
        data = backend.read(key)
        modified = backend.modified(key)
        if data is None:  # removed while we looked
            continue
        readable, value = _decode(data)
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
        print(_dump(out))
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
    dirs = target.cachedir / DIRS_DIR
    files = _files_below(dirs, args.glob)
    for path in files:
        stat = path.stat()
        name = path.relative_to(target.cachedir).as_posix()
        table.append((name, format_size(stat.st_size), format_age(now - stat.st_mtime)))
    if not table:
        print(
            f"no values match {args.glob!r}" if args.glob != "*" else "cache is empty"
        )
        return 0
    _print_table(("KEY", "SIZE", "AGE"), table)
    noun = "value" if len(rows) == 1 else "values"
    summary = f"{len(rows)} {noun}"
    if files:
        summary += f", {len(files)} file{'s' if len(files) != 1 else ''} in d/"
    print(summary)
    return 0


def _print_table(
    header: tuple[str, str, str], rows: list[tuple[str, str, str]]
) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for key, size, age in [header, *rows]:
        print(f"{key:<{widths[0]}}  {size:>{widths[1]}}  {age:>{widths[2]}}")


def cmd_get(args: argparse.Namespace) -> int:
    key = normalize_key(args.key)
    backend = Target(args).backend
    data = backend.read(key)
    if data is None:
        raise CommandError(f"no value stored under key {key!r} in {backend.describe()}")
    readable, value = _decode(data)
    if not readable:
        raise CommandError(
            f"the value of key {key!r} is not valid JSON ({backend.location(key)})"
        )
    print(_dump(value))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    key = normalize_key(args.key)
    text = sys.stdin.read() if args.json == "-" else args.json
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"invalid JSON for key {key!r}: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno} (char {exc.pos})",
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
            dirs = target.cachedir / DIRS_DIR
            if dirs.is_dir():
                import shutil

                shutil.rmtree(dirs)
            print(f"cleared {target.cachedir}")
            return 0
        removed = sum(backend.delete(key) for key in _sorted_keys(backend, args.glob))
    except OSError as exc:
        raise CommandError(f"could not clear {backend.describe()}: {exc}") from None
    print(f"removed {removed} value{'s' if removed != 1 else ''}")
    return 0


def cmd_lf(args: argparse.Namespace) -> int:
    backend = Target(args).backend
    data = backend.read(LASTFAILED_KEY)
    record: object = {}
    if data is not None:
        readable, record = _decode(data)
        if not readable or not isinstance(record, dict):
            raise CommandError(
                f"{LASTFAILED_KEY!r} is damaged ({backend.location(LASTFAILED_KEY)}): "
                "expected a mapping of node ids"
            )
    assert isinstance(record, dict)
    by_file: dict[str, list[str]] = {}
    for nodeid in record:
        by_file.setdefault(nodeid.split("::", 1)[0], []).append(nodeid)
    if args.json:
        print(_dump({path: by_file[path] for path in sorted(by_file)}))
        return 0
    if not by_file:
        print("no failures recorded")
        return 0
    for path in sorted(by_file):
        nodeids = by_file[path]
        print(f"{path}: {len(nodeids)} failed")
        for nodeid in nodeids:
            note = "  (collection error)" if nodeid == path else ""
            print(f"  {nodeid}{note}")
    files = "file" if len(by_file) == 1 else "files"
    failures = "failure" if len(record) == 1 else "failures"
    print(f"{len(record)} {failures} in {len(by_file)} {files}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from pytest_crosscache._merge import merge_cache_dirs

    cwd = Path.cwd()
    dest = Path(os.path.normpath(cwd / args.into))
    sources: list[Path] = []
    for name in args.sources:
        source = Path(os.path.normpath(cwd / name))
        if not source.is_dir():
            raise CommandError(f"source {name!r} is not a directory", 2)
        if source != dest and source not in sources:
            sources.append(source)
    try:
        report = merge_cache_dirs(dest, sources)
    except OSError as exc:
        raise CommandError(f"could not merge into {str(dest)!r}: {exc}") from None
    for problem in report.problems:
        print(f"{PROG}: warning: {problem}", file=sys.stderr)
    print(
        f"merged {len(sources)} cache director{'y' if len(sources) == 1 else 'ies'} "
        f"into {dest}: {report.values} values written, {report.failures} known "
        f"failures, {report.files} files copied below d/"
    )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    backend = Target(args).backend
    cutoff = time.time() - args.older_than
    removed = 0
    for key in _sorted_keys(backend, args.glob):
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


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _location_options() -> argparse.ArgumentParser:
    # A parent parser, so these work before and after the command name.
    # SUPPRESS keeps a later (unset) copy from overwriting an earlier one.
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("where the cache is")
    group.add_argument(
        "--rootdir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the project's rootdir, as pytest's --rootdir; the configuration "
        "file is searched from there (default: found from the current directory)",
    )
    group.add_argument(
        "-c",
        "--config-file",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="read cache_dir from this configuration file, as pytest -c does",
    )
    group.add_argument(
        "--cache-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="use this cache directory, skipping rootdir and configuration discovery",
    )
    group.add_argument(
        "--backend",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"where values are stored (default: ${BACKEND_ENV}, the "
        f"{BACKEND_INI} ini setting, else the cache directory)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``crosscache`` command."""
    where = _location_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[where],
        description="Inspect and maintain a project's pytest cache (.pytest_cache) "
        "without running pytest.",
        epilog="Exit status: 0 on success, 1 if a key or record is missing, "
        "2 on usage errors.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands.required = True

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[where], help=help, description=help)
        sub.set_defaults(func=func)
        return sub

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

    lf = add("lf", cmd_lf, "list the tests that failed last, by file")
    lf.add_argument(
        "--json", action="store_true", help="print a JSON object: file -> node ids"
    )

    merge = add(
        "merge",
        cmd_merge,
        "merge cache directories (e.g. of CI shards) into DEST: failures and "
        "known tests are united, other values taken from the newest",
    )
    merge.add_argument("--into", required=True, metavar="DEST")
    merge.add_argument("sources", nargs="+", metavar="SRC")

    prune = add("prune", cmd_prune, "remove values not written for a while")
    prune.add_argument(
        "--older-than",
        required=True,
        type=_duration,
        metavar="DURATION",
        help="e.g. 45s, 30m, 12h, 7d or 1h30m",
    )
    prune.add_argument("glob", nargs="?", default="*", metavar="GLOB")
    prune.add_argument(
        "-n", "--dry-run", action="store_true", help="only list what would go"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crosscache`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
        sys.stdout.flush()
    except CommandError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except ValueError as exc:
        # Invalid keys and unstorable values: the message names the problem.
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Output piped into head and the like: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return status
