"""Merging cache directories, such as the caches of a CI matrix's shards.

``cache/lastfailed`` and ``cache/nodeids`` are unions: a test failed if it
failed in any shard, and is known if any shard ran it.  The test history
(``crosscache/history/...``) is a union by run id: each shard's runs are
added once, however often they are merged.  Every other value
is taken from whichever directory wrote it last, and keeps its modification
time, so ``Cache.get(max_age=...)`` sees its real age.  Files below ``d/``
are merged the same way, file by file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_crosscache import _json
from pytest_crosscache._keys import DIRS_DIR
from pytest_crosscache._keys import LASTFAILED_KEY
from pytest_crosscache._keys import NODEIDS_KEY
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.cli.discovery import locate
from pytest_crosscache.cli.target import PROG
from pytest_crosscache.cli.target import CommandError
from pytest_crosscache.fs.atomic import TEMP_SUFFIX
from pytest_crosscache.fs.atomic import is_temporary
from pytest_crosscache.fs.cachedir import ensure_cache_dir
from pytest_crosscache.history.settings import DEFAULT_WINDOW
from pytest_crosscache.history.settings import RUNS_INI
from pytest_crosscache.history.settings import parse_window

if TYPE_CHECKING:
    from pytest_crosscache.cli import AddCommand


@dataclass
class MergeReport:
    """What a merge did, for the command to print."""

    values: int = 0
    failures: int = 0
    files: int = 0
    #: Runs in the merged test history.
    runs: int = 0
    #: Records that were left out because they were damaged, one line each.
    problems: list[str] = field(default_factory=list)


def merge_cache_dirs(
    dest: Path, sources: Sequence[Path], *, history_window: int = DEFAULT_WINDOW
) -> MergeReport:
    """Merge the cache directories ``sources`` into ``dest`` (created if needed).

    What ``dest`` holds already takes part in the merge like a source.  The
    test history keeps ``history_window`` runs per test.

    :raises OSError: if ``dest`` cannot be written.
    """
    report = MergeReport()
    target = DirectoryBackend(dest)
    shards = [DirectoryBackend(source) for source in sources]
    keys: set[str] = set()
    for shard in shards:
        keys.update(shard.keys())
    if any(key.startswith(HISTORY_KEYS) for key in keys):
        _merge_history(target, shards, report, history_window)
    for key in sorted(keys):
        if key.startswith(HISTORY_KEYS):
            continue
        if key == LASTFAILED_KEY:
            merged = _merge_record(target, shards, key, _union_of_mappings, report)
            report.failures = len(merged) if isinstance(merged, dict) else 0
        elif key == NODEIDS_KEY:
            _merge_record(target, shards, key, _union_of_lists, report)
        elif _take_newest(target, shards, key):
            report.values += 1
    for source in sources:
        report.files += _merge_files(source / DIRS_DIR, dest / DIRS_DIR, dest)
    return report


Combine = Callable[[object, object], object]

#: The test history's keys: merged together, by run id.
HISTORY_KEYS = "crosscache/history/"


def _merge_history(
    target: DirectoryBackend,
    shards: Sequence[DirectoryBackend],
    report: MergeReport,
    window: int,
) -> None:
    from pytest_crosscache.history.store import merge_history

    report.runs = merge_history(
        target,
        shards,
        window=window,
        on_damage=lambda problem: report.problems.append(f"left out {problem}"),
    )
    report.values += 1


def _union_of_mappings(merged: object, value: object) -> object:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping of node ids, found {type(value).__name__}")
    assert isinstance(merged, dict)
    merged.update(value)
    return merged


def _union_of_lists(merged: object, value: object) -> object:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of node id strings")
    assert isinstance(merged, list)
    return sorted(set(merged) | set(value))


def _merge_record(
    target: DirectoryBackend,
    shards: Sequence[DirectoryBackend],
    key: str,
    combine: Combine,
    report: MergeReport,
) -> object:
    empty: object = {} if combine is _union_of_mappings else []
    result: object = empty

    def merge(stored: bytes | None) -> bytes | None:
        nonlocal result
        merged = _parsed(target, key, stored, combine, empty, report)
        for shard in shards:
            merged = _parsed(shard, key, shard.read(key), combine, merged, report)
        result = merged
        return _json.encode(key, merged)

    # Under the key's lock: a pytest session finishing on ``dest`` meanwhile
    # merges its own outcomes with ours instead of overwriting them.
    target.update(key, merge)
    report.values += 1
    return result


def _parsed(
    backend: DirectoryBackend,
    key: str,
    data: bytes | None,
    combine: Combine,
    merged: object,
    report: MergeReport,
) -> object:
    if data is None:
        return merged
    try:
        return combine(merged, _json.decode(data))
    except (ValueError, RecursionError, TypeError) as exc:
        report.problems.append(f"left out damaged {backend.location(key)}: {exc}")
        return merged


def _take_newest(
    target: DirectoryBackend, shards: Sequence[DirectoryBackend], key: str
) -> bool:
    """Copy the newest version of ``key`` into ``target``; whether one was copied."""
    newest: tuple[float, DirectoryBackend] | None = None
    for shard in shards:
        modified = shard.modified(key)
        if modified is not None and (newest is None or modified > newest[0]):
            newest = (modified, shard)
    if newest is None:
        return False
    modified, shard = newest
    current = target.modified(key)
    if current is not None and current >= modified:
        return False
    data = shard.read(key)
    if data is None:
        return False
    target.write(key, data)
    os.utime(target.values_dir / key, (modified, modified))
    return True


def _merge_files(source: Path, dest: Path, cachedir: Path) -> int:
    """Copy the files below ``source`` that ``dest`` lacks or has older copies of."""
    if not source.is_dir():
        return 0
    copied = 0
    for top, _dirs, names in os.walk(source):
        for name in names:
            if is_temporary(name):
                continue
            path = Path(top, name)
            target = dest / path.relative_to(source)
            try:
                if target.lstat().st_mtime >= path.lstat().st_mtime:
                    continue
            except FileNotFoundError:
                pass
            ensure_cache_dir(cachedir)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{os.getpid()}-{os.urandom(4).hex()}{TEMP_SUFFIX}")
            # Copied next to the target and renamed, so readers never see
            # half a file; copy2 keeps the modification time.
            shutil.copy2(path, tmp, follow_symlinks=False)
            os.replace(tmp, target)
            copied += 1
    return copied


def cmd_merge(args: argparse.Namespace) -> int:
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
        window = parse_window(locate(cwd).setting(RUNS_INI))
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc), 2) from None
    try:
        report = merge_cache_dirs(dest, sources, history_window=window)
    except OSError as exc:
        raise CommandError(f"could not merge into {str(dest)!r}: {exc}") from None
    for problem in report.problems:
        print(f"{PROG}: warning: {problem}", file=sys.stderr)
    print(
        f"merged {len(sources)} cache director{'y' if len(sources) == 1 else 'ies'} "
        f"into {dest}: {report.values} values written, {report.failures} known "
        f"failures, {report.files} files copied below d/"
        + (f", {report.runs} runs in the test history" if report.runs else "")
    )
    return 0


def add_commands(add: AddCommand) -> None:
    """Add merge."""
    merge = add(
        "merge",
        cmd_merge,
        "merge cache directories (e.g. of CI shards) into DEST: failures and "
        "known tests are united, other values taken from the newest",
    )
    merge.add_argument("--into", required=True, metavar="DEST")
    merge.add_argument("sources", nargs="+", metavar="SRC")
