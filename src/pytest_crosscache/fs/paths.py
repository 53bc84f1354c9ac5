"""Globbing keys and files below a directory without ever leaving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path


def files_below(base: Path, glob: str) -> Iterator[Path]:
    """Yield the files ``base.rglob(glob)`` matches that really lie below ``base``.

    A glob may hold ``..`` segments, which ``rglob`` follows; matches that
    normalise to a path outside ``base`` are dropped.  Paths are yielded as
    matched (not normalised).
    """
    for path in base.rglob(glob):
        if path.is_file() and Path(os.path.normpath(path)).is_relative_to(base):
            yield path


def rglob_match(key: str, pattern: str) -> bool:
    """Whether ``Path(values).rglob(pattern)`` would yield the value ``key``.

    ``rglob(p)`` is ``glob("**/" + p)``: the pattern's segments match the
    key's last segments, ``**`` any number of segments, and a ``*`` does
    not cross a ``/``.
    """
    pattern_parts = [part for part in pattern.split("/") if part not in ("", ".")]
    return _match_parts(["**", *pattern_parts], key.split("/"))


def _match_parts(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    from fnmatch import fnmatchcase

    # Dynamic programming over (pattern index, parts index).
    reach = {0}
    for segment in pattern:
        nxt: set[int] = set()
        for pos in reach:
            if segment == "**":
                nxt.update(range(pos, len(parts) + 1))
            elif pos < len(parts) and fnmatchcase(parts[pos], segment):
                nxt.add(pos + 1)
        reach = nxt
        if not reach:
            return False
    return len(parts) in reach
