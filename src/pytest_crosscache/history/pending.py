"""Runs whose history could not be written yet, kept for the next session.

When the history's lock stays taken past ``cache_lock_timeout`` (its holder
hangs or was stopped), a session saves its run in a file of its own below
``<cache_dir>/.crosscache-history-pending/`` instead of dropping it.  The
next session that gets the lock adds those runs before its own and deletes
the files, still holding the lock.  A run is united by its id, so adding
one that was somehow recorded already changes nothing.

Damaged, foreign or oversized files are skipped (and reported) and removed
once the lock is held, so they cannot block recording forever.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path

from pytest_crosscache.history.model import Run
from pytest_crosscache.history.model import run_from_json
from pytest_crosscache.history.model import run_to_json
from pytest_crosscache.history.outcomes import OUTCOMES

#: Inside ``cache_dir``, outside ``v/``: pytest's layout stays as it is.
PENDING_DIR = ".crosscache-history-pending"
#: At most this many runs wait; older ones beyond it are dropped.
MAX_FILES = 50
#: A bigger file is no run of ours (one of 200k tests is about 15 MB).
MAX_BYTES = 128 << 20

Results = Mapping[str, tuple[str, float]]


def save(cachedir: Path, run: Run, results: Results) -> Path:
    """Keep ``run`` and its ``results`` for the next session; return the file.

    :raises OSError: if the file cannot be written.
    """
    from pytest_crosscache.fs.atomic import atomic_write
    from pytest_crosscache.fs.cachedir import ensure_cache_dir

    directory = cachedir / PENDING_DIR
    ensure_cache_dir(cachedir)
    directory.mkdir(exist_ok=True)
    # Named by start time first, so files sort oldest first.
    path = directory / f"{int(run.started * 1000):015d}-{run.id}.json"
    document = {
        "run": {"id": run.id, **run_to_json(run)},
        "results": {nodeid: list(result) for nodeid, result in results.items()},
    }
    atomic_write(path, json.dumps(document, separators=(",", ":")).encode("ascii"))
    return path


def load(
    cachedir: Path, on_damage: Callable[[str], None] | None = None
) -> list[tuple[Path, Run | None, dict[str, tuple[str, float]]]]:
    """The waiting runs, oldest first: ``(file, run, results)``.

    ``run`` is ``None`` for a file that cannot be used; it is to be removed.
    """
    directory = cachedir / PENDING_DIR
    try:
        paths = sorted(
            path for path in directory.iterdir() if path.name.endswith(".json")
        )
    except OSError:
        return []
    found: list[tuple[Path, Run | None, dict[str, tuple[str, float]]]] = []
    for number, path in enumerate(paths):
        if number < len(paths) - MAX_FILES:
            found.append((path, None, {}))
            continue
        run, results = _read(path)
        if run is None and on_damage is not None:
            on_damage(f"left out the unusable pending run {path}")
        found.append((path, run, results))
    return found


def _read(path: Path) -> tuple[Run | None, dict[str, tuple[str, float]]]:
    try:
        if path.is_symlink() or path.stat().st_size > MAX_BYTES:
            return None, {}
        document = json.loads(path.read_bytes())
        raw = document["run"]
        run = run_from_json(str(raw["id"]), raw)
        if run is None:
            return None, {}
        results = {
            str(nodeid): (str(letter), float(seconds))
            for nodeid, (letter, seconds) in document["results"].items()
            if letter in OUTCOMES
        }
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None, {}
    return run, results


def discard(paths: list[Path]) -> None:
    """Remove the files of runs that are now recorded (or unusable)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
