"""Merging cache directories, such as the caches of a CI matrix's shards.

``cache/lastfailed`` and ``cache/nodeids`` are unions: a test failed if it
failed in any shard, and is known if any shard ran it.  The test history
(``crosscache/history/...``) is a union by run id: each shard's runs are
added once, however often they are merged.  Every other value
is taken from whichever directory wrote it last, and keeps its modification
time, so ``Cache.get(max_age=...)`` sees its real age.  Files below ``d/``
are merged the same way, file by file.

A shard is whatever the job that made it left, so it is read as foreign
data (:mod:`pytest_crosscache.fs.foreign`): regular files only, never
through a link, at most ``max_size`` bytes each; links, FIFOs, devices and
oversized files are skipped and reported.  The merge runs in two steps so
that a failure leaves the destination as it was: every copy is first
staged as a temporary file next to its destination, and only once all are
staged are the records merged (``cache/lastfailed`` first, then
``cache/nodeids`` and the history) and the copies moved into place.  A
failure while staging removes what was staged; one while moving things
into place leaves every failure merged.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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
from pytest_crosscache.backends.directory import VALUES_DIR
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.cli.discovery import locate
from pytest_crosscache.cli.format import format_size
from pytest_crosscache.cli.format import parse_size
from pytest_crosscache.cli.target import PROG
from pytest_crosscache.cli.target import CommandError
from pytest_crosscache.fs.atomic import TEMP_SUFFIX
from pytest_crosscache.fs.atomic import is_temporary
from pytest_crosscache.fs.cachedir import SUPPORTING_FILES
from pytest_crosscache.fs.cachedir import ensure_cache_dir
from pytest_crosscache.fs.foreign import ForeignFile
from pytest_crosscache.fs.foreign import ForeignFileError
from pytest_crosscache.fs.foreign import copy_bounded
from pytest_crosscache.fs.foreign import open_regular
from pytest_crosscache.fs.foreign import read_bounded
from pytest_crosscache.fs.foreign import regular_files
from pytest_crosscache.fs.paths import UnsafePathError
from pytest_crosscache.fs.paths import confined
from pytest_crosscache.history.settings import DEFAULT_WINDOW
from pytest_crosscache.history.settings import RUNS_INI
from pytest_crosscache.history.settings import parse_window

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from pytest_crosscache.cli import AddCommand

#: The largest file a merge copies (and record it parses) by default.
DEFAULT_MAX_SIZE = 1 << 30


@dataclass
class MergeReport:
    """What a merge did, for the command to print."""

    values: int = 0
    failures: int = 0
    files: int = 0
    #: Runs in the merged test history.
    runs: int = 0
    #: What was left out (damaged records, links, special or oversized
    #: files, conflicts), one line each.
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Shard:
    """One source directory and the regular files found in its ``v/`` and ``d/``."""

    root: Path
    trees: dict[str, dict[str, ForeignFile]]


@dataclass(frozen=True)
class _Copy:
    """A file to copy from a shard into the destination."""

    tree: str
    shard: _Shard
    file: ForeignFile

    @property
    def source(self) -> Path:
        return self.shard.root / self.tree / self.file.name


def merge_cache_dirs(
    dest: Path,
    sources: Sequence[Path],
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    history_window: int = DEFAULT_WINDOW,
) -> MergeReport:
    """Merge the cache directories ``sources`` into ``dest`` (created if needed).

    What ``dest`` holds already takes part in the merge like a source.  The
    test history keeps ``history_window`` runs per test.  Anything left out
    is listed in the report's ``problems``.

    :raises OSError: if ``dest`` cannot be written; nothing was changed
        then, or (if it failed while moving copies into place) at least
        every failure was merged.
    """
    report = MergeReport()
    shards = [_survey(source, report, max_size) for source in sources]
    target = DirectoryBackend(dest)
    unions = {key: _shard_versions(shards, key, report, max_size) for key in _RECORDS}
    history = any(
        name.startswith(HISTORY_KEYS)
        for shard in shards
        for name in shard.trees[VALUES_DIR]
    )
    copies = [
        *_plan(VALUES_DIR, shards, dest, report, skip=set(unions)),
        *_plan(DIRS_DIR, shards, dest, report, skip=set()),
    ]
    staging = _Staging(dest, report, max_size)
    try:
        for copy in copies:
            staging.stage(copy)
        # Failures first: whatever goes wrong after this, they are merged.
        for key, (versions, present) in unions.items():
            if present:
                merged = _merge_record(target, key, versions, report)
                if key == LASTFAILED_KEY:
                    report.failures = len(merged) if isinstance(merged, dict) else 0
        if history:
            _merge_history(target, shards, report, history_window, max_size)
        staging.commit()
    except BaseException:
        staging.discard()
        raise
    return report


#: The test history's keys: merged together, by run id.
HISTORY_KEYS = "crosscache/history/"


def _merge_history(
    target: DirectoryBackend,
    shards: Sequence[_Shard],
    report: MergeReport,
    window: int,
    max_size: int,
) -> None:
    from pytest_crosscache.history.store import merge_history

    report.runs = merge_history(
        target,
        [_ShardValues(shard, report, max_size) for shard in shards],
        window=window,
        on_damage=lambda problem: report.problems.append(f"left out {problem}"),
    )
    report.values += 1


class _ShardValues:
    """A shard's values as a read-only backend, for merges done by backend.

    Reads only the regular files the survey found, at most ``max_size``
    bytes each, never through a link.
    """

    def __init__(self, shard: _Shard, report: MergeReport, max_size: int) -> None:
        self.shard = shard
        self.report = report
        self.max_size = max_size

    def describe(self) -> str:
        return str(self.shard.root)

    def location(self, key: str) -> str:
        return str(self.shard.root / VALUES_DIR / key)

    def read(self, key: str) -> bytes | None:
        file = self.shard.trees[VALUES_DIR].get(key)
        if file is None:
            return None
        try:
            return read_bounded(self.shard.root / VALUES_DIR, file, self.max_size)
        except ForeignFileError as exc:
            self.report.problems.append(f"left out {self.location(key)}: {exc}")
            return None

    def modified(self, key: str) -> float | None:
        file = self.shard.trees[VALUES_DIR].get(key)
        return None if file is None else file.mtime

    def keys(self, pattern: str = "*") -> Iterator[str]:
        from pytest_crosscache.fs.paths import rglob_match

        return (
            key for key in self.shard.trees[VALUES_DIR] if rglob_match(key, pattern)
        )

    def lock(
        self, key: str, timeout: float | None = None
    ) -> AbstractContextManager[None]:
        # Nobody writes a shard while it is merged: nothing to exclude.
        return contextlib.nullcontext()

    def write(self, key: str, data: bytes) -> None:
        raise PermissionError(f"merge sources are read-only: {self.location(key)}")

    def delete(self, key: str) -> bool:
        raise PermissionError(f"merge sources are read-only: {self.location(key)}")

    def update(
        self, key: str, updater: Callable[[bytes | None], bytes | None]
    ) -> bytes | None:
        raise PermissionError(f"merge sources are read-only: {self.location(key)}")

    def clear(self) -> None:
        raise PermissionError(f"merge sources are read-only: {self.shard.root}")

    def tidy(self) -> None:
        return None


def _survey(source: Path, report: MergeReport, max_size: int) -> _Shard:
    trees: dict[str, dict[str, ForeignFile]] = {}
    for tree in (VALUES_DIR, DIRS_DIR):
        found: dict[str, ForeignFile] = {}
        for file in regular_files(source / tree, report.problems.append):
            if is_temporary(file.name.rsplit("/", 1)[-1]):
                continue  # an interrupted write's leftover, never a value
            if file.size > max_size:
                report.problems.append(
                    f"skipped {source / tree / file.name}: {format_size(file.size)} "
                    f"is more than the {format_size(max_size)} a merge copies "
                    "(see --max-size)"
                )
                continue
            found[file.name] = file
        trees[tree] = found
    return _Shard(source, trees)


# -- records ---------------------------------------------------------------

Combine = Callable[[object, object], object]


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


#: How each record is combined, and its empty value.
_RECORDS: dict[str, tuple[Combine, Callable[[], object]]] = {
    LASTFAILED_KEY: (_union_of_mappings, dict),
    NODEIDS_KEY: (_union_of_lists, list),
}


def _shard_versions(
    shards: Sequence[_Shard], key: str, report: MergeReport, max_size: int
) -> tuple[list[object], bool]:
    """The shards' usable versions of record ``key``; and whether any has one."""
    combine, empty = _RECORDS[key]
    versions: list[object] = []
    present = False
    for shard in shards:
        file = shard.trees[VALUES_DIR].get(key)
        if file is None:
            continue
        present = True
        where = shard.root / VALUES_DIR / key
        try:
            value = _json.decode(read_bounded(shard.root / VALUES_DIR, file, max_size))
            combine(empty(), value)  # checks the shape
        except ForeignFileError as exc:
            report.problems.append(f"left out {where}: {exc}")
        except (ValueError, RecursionError, TypeError) as exc:
            report.problems.append(f"left out damaged {where}: {exc}")
        else:
            versions.append(value)
    return versions, present


def _merge_record(
    target: DirectoryBackend, key: str, versions: list[object], report: MergeReport
) -> object:
    combine, empty = _RECORDS[key]
    result: object = empty()

    def merge(stored: bytes | None) -> bytes | None:
        nonlocal result
        merged = empty()
        if stored is not None:
            try:
                merged = combine(merged, _json.decode(stored))
            except (ValueError, RecursionError, TypeError) as exc:
                report.problems.append(
                    f"left out damaged {target.location(key)}: {exc}"
                )
                merged = empty()
        for value in versions:
            merged = combine(merged, value)
        result = merged
        return _json.encode(key, merged)

    # Under the key's lock: a pytest session finishing on ``dest`` meanwhile
    # merges its own outcomes with ours instead of overwriting them.
    target.update(key, merge)
    report.values += 1
    return result


# -- plain values and d/ files ---------------------------------------------


def _plan(
    tree: str,
    shards: Sequence[_Shard],
    dest: Path,
    report: MergeReport,
    skip: set[str],
) -> list[_Copy]:
    """The newest version of each file of ``tree`` that ``dest`` lacks or has older.

    A name that is a file in one place and a directory in another (in two
    shards, or in a shard and ``dest``) cannot be both: the first one in
    sorted order wins, the other is reported.
    """
    newest: dict[str, _Copy] = {}
    for shard in shards:
        for name, file in shard.trees[tree].items():
            if name in skip or (tree == VALUES_DIR and name.startswith(HISTORY_KEYS)):
                continue
            known = newest.get(name)
            if known is None or file.mtime_ns > known.file.mtime_ns:
                newest[name] = _Copy(tree, shard, file)
    plan: list[_Copy] = []
    files: dict[str, Path] = {}
    for name in sorted(newest):
        copy = newest[name]
        source = copy.source
        parts = name.split("/")
        clash = next(
            (
                "/".join(parts[:i])
                for i in range(1, len(parts))
                if "/".join(parts[:i]) in files
            ),
            None,
        )
        if clash is not None:
            report.problems.append(
                f"skipped {source}: {tree}/{clash} is a file in "
                f"{files[clash]}, so it cannot be a directory"
            )
            continue
        files[name] = copy.shard.root
        try:
            path = confined(dest, name, under=tree, follow=False)
        except UnsafePathError as exc:
            report.problems.append(f"skipped {source}: {exc}")
            continue
        try:
            current = os.lstat(path)
        except OSError:
            pass
        else:
            if current.st_mtime_ns >= copy.file.mtime_ns:
                continue
        plan.append(copy)
    return plan


class _Staging:
    """Copies staged next to their destinations, moved into place together."""

    def __init__(self, dest: Path, report: MergeReport, max_size: int) -> None:
        self.dest = dest
        self.report = report
        self.max_size = max_size
        #: (temporary file, final path, tree) of each staged copy.
        self.staged: list[tuple[Path, Path, str]] = []
        #: Directories this merge created, to remove if it fails.
        self.created: list[Path] = []
        self.created_dest = not dest.exists()

    def stage(self, copy: _Copy) -> None:
        """Copy one file next to where it goes; problems of the file are reported.

        :raises OSError: if the destination cannot be written.
        """
        source = copy.source
        try:
            path = confined(self.dest, copy.file.name, under=copy.tree, follow=False)
        except UnsafePathError as exc:
            self.report.problems.append(f"skipped {source}: {exc}")
            return
        if os.path.isdir(path) and not os.path.islink(path):
            self.report.problems.append(
                f"skipped {source}: {path} is a directory in the destination"
            )
            return
        try:
            fd = open_regular(copy.shard.root / copy.tree, copy.file)
        except ForeignFileError as exc:
            self.report.problems.append(f"skipped {source}: {exc}")
            return
        try:
            try:
                self._make_parents(path)
            except (FileExistsError, NotADirectoryError):
                self.report.problems.append(
                    f"skipped {source}: a file stands where the destination "
                    f"needs a directory on the way to {path}"
                )
                return
            tmp = path.with_name(f".{os.getpid()}-{os.urandom(4).hex()}{TEMP_SUFFIX}")
            out = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666
            )
            self.staged.append((tmp, path, copy.tree))
            try:
                copy_bounded(fd, out, self.max_size, str(source))
                # The copy keeps the original's age.
                os.utime(out, ns=(copy.file.mtime_ns, copy.file.mtime_ns))
            except ForeignFileError as exc:
                self.report.problems.append(f"skipped {source}: {exc}")
                self.staged.pop()
                os.unlink(tmp)
            finally:
                os.close(out)
        finally:
            os.close(fd)

    def _make_parents(self, path: Path) -> None:
        missing: list[Path] = []
        parent = path.parent
        while not os.path.lexists(parent):
            missing.append(parent)
            parent = parent.parent
        if missing:
            ensure_cache_dir(self.dest)
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                directory.mkdir()
                self.created.append(directory)
        if not os.path.isdir(path.parent):
            raise NotADirectoryError(path.parent)

    def commit(self) -> None:
        """Move every staged copy into place, in the order staged."""
        while self.staged:
            tmp, path, tree = self.staged[0]
            os.replace(tmp, path)
            self.staged.pop(0)
            if tree == VALUES_DIR:
                self.report.values += 1
            else:
                self.report.files += 1
        self.created.clear()

    def discard(self) -> None:
        """Remove what is still staged, and the directories made for it.

        A destination this merge created goes too if nothing but its
        supporting files ended up in it.
        """
        for tmp, _, _ in self.staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.staged.clear()
        for directory in reversed(self.created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        self.created.clear()
        if self.created_dest:
            with contextlib.suppress(OSError):
                if set(os.listdir(self.dest)) <= set(SUPPORTING_FILES):
                    for name in SUPPORTING_FILES:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(self.dest / name)
                    self.dest.rmdir()


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
        report = merge_cache_dirs(
            dest, sources, max_size=args.max_size, history_window=window
        )
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


def parse_size_arg(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_commands(add: AddCommand) -> None:
    """Add merge."""
    merge = add(
        "merge",
        cmd_merge,
        "merge cache directories (e.g. of CI shards) into DEST: failures and "
        "known tests are united, other values taken from the newest",
    )
    merge.add_argument("--into", required=True, metavar="DEST")
    merge.add_argument(
        "--max-size",
        type=parse_size_arg,
        default=DEFAULT_MAX_SIZE,
        metavar="SIZE",
        help="skip (with a warning) files larger than this, e.g. 512MiB or 2GiB "
        f"(default {format_size(DEFAULT_MAX_SIZE)})",
    )
    merge.add_argument("sources", nargs="+", metavar="SRC")
