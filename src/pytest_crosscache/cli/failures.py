"""The ``lf`` command: the recorded failures, by file."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pytest_crosscache._deferred import Deferred
from pytest_crosscache._keys import LASTFAILED_KEY
from pytest_crosscache.cli.format import dump
from pytest_crosscache.cli.target import CommandError
from pytest_crosscache.cli.target import Target
from pytest_crosscache.cli.target import decode

if TYPE_CHECKING:
    from pytest_crosscache.cli import AddCommand


def cmd_lf(args: argparse.Namespace) -> int:
    target = Target(args)
    backend = target.backend
    # As a session reads it: with updates deferred past a stuck lock.
    deferred = Deferred(target.cachedir, LASTFAILED_KEY)
    data = deferred.fold(backend.read(LASTFAILED_KEY), deferred.files())
    record: object = {}
    if data is not None:
        readable, record = decode(data)
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
        print(dump({path: by_file[path] for path in sorted(by_file)}))
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


def add_commands(add: AddCommand) -> None:
    """Add lf."""
    lf = add("lf", cmd_lf, "list the tests that failed last, by file")
    lf.add_argument(
        "--json", action="store_true", help="print a JSON object: file -> node ids"
    )
