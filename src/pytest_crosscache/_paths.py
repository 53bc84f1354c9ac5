"""Globbing below a directory without ever leaving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
