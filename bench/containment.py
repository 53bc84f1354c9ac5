"""What the containment checks and the removable locks cost, side by side.

Usage (from the repository root, with the plugin installed)::

    python bench/containment.py                 # 10k and 200k stored values
    python bench/containment.py --sizes 2000 --repeat 5

Pairs, each timed in alternating order (reversed every other round), with
medians, spread (min-max) and the ratio of medians plus the median of the
per-round ratios ("paired"):

``read``     ``DirectoryBackend.read`` of ``cache/lastfailed`` (checked path)
             against reading the same file by its unchecked path;
``write``    ``DirectoryBackend.write`` against ``fs.atomic.atomic_write``;
``lock``     an uncontended ``DirectoryBackend.lock`` (our ``flock`` lock
             with the inode re-check) against ``filelock.FileLock`` on the
             same file, as the plugin used before;
``listing``  ``DirectoryBackend.keys("*")`` (a walk that checks every
             entry) against ``Path.rglob("*")`` filtered to files, which
             pytest's provider and earlier versions used.

Nothing here asserts a timing: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_crosscache import DirectoryBackend
from pytest_crosscache.fs.atomic import atomic_write

Timed = Callable[[], object]


def timed(func: Timed, inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        func()
    return (time.perf_counter() - start) / inner


def pair(
    name: str, ours: Timed, theirs: Timed, *, repeat: int, inner: int
) -> dict[str, object]:
    """Time both alternately; medians, spread and ratios in seconds per call."""
    a: list[float] = []
    b: list[float] = []
    for round_ in range(repeat):
        order = [(ours, a), (theirs, b)]
        if round_ % 2:
            order.reverse()
        for func, into in order:
            into.append(timed(func, inner))
    paired = statistics.median(x / y for x, y in zip(a, b, strict=True))
    return {
        "name": name,
        "ours": statistics.median(a),
        "ours_spread": (min(a), max(a)),
        "theirs": statistics.median(b),
        "theirs_spread": (min(b), max(b)),
        "ratio": statistics.median(a) / statistics.median(b),
        "paired": paired,
    }


def fill(root: Path, count: int) -> DirectoryBackend:
    backend = DirectoryBackend(root)
    backend.write("cache/lastfailed", b'{"t.py::a": true}')
    for i in range(count):
        # Spread over directories as plugins' keys are: 100 per directory.
        backend.write(f"plugin{i % (count // 100 or 1)}/value{i}", b"1")
    return backend


def bench(size: int, repeat: int, base: Path) -> list[dict[str, object]]:
    backend = fill(base / f"cache-{size}", size)
    path = backend.values_dir / "cache" / "lastfailed"
    data = path.read_bytes()
    rows = [
        pair(
            "read",
            lambda: backend.read("cache/lastfailed"),
            path.read_bytes,
            repeat=repeat,
            inner=2000,
        ),
        pair(
            "write",
            lambda: backend.write("cache/lastfailed", data),
            lambda: atomic_write(path, data),
            repeat=repeat,
            inner=300,
        ),
    ]
    import filelock

    def ours_lock() -> None:
        with backend.lock("cache/lastfailed"):
            pass

    lock_file = base / "filelock.lock"

    def filelock_lock() -> None:
        with filelock.FileLock(lock_file, timeout=30):
            pass

    rows.append(pair("lock", ours_lock, filelock_lock, repeat=repeat, inner=500))
    values = backend.values_dir

    def rglob_files() -> list[Path]:
        return [p for p in values.rglob("*") if p.is_file()]

    inner = max(1, 20_000 // size)
    rows.append(
        pair(
            "listing",
            lambda: list(backend.keys("*")),
            rglob_files,
            repeat=repeat,
            inner=inner,
        )
    )
    for row in rows:
        row["size"] = size
    return rows


def show(rows: list[dict[str, object]]) -> None:
    def us(seconds: object) -> str:
        assert isinstance(seconds, float)
        return f"{seconds * 1e6:10.1f}"

    def spread(values: object) -> str:
        low, high = values  # type: ignore[misc]
        return f"{low * 1e6:.1f}-{high * 1e6:.1f}"

    print(
        f"{'size':>7} {'pair':<8} {'ours µs':>10} {'spread':>17} "
        f"{'theirs µs':>10} {'spread':>17} {'ratio':>6} {'paired':>6}"
    )
    for row in rows:
        print(
            f"{row['size']:>7} {row['name']:<8} {us(row['ours'])} "
            f"{spread(row['ours_spread']):>17} {us(row['theirs'])} "
            f"{spread(row['theirs_spread']):>17} {row['ratio']:6.2f} "
            f"{row['paired']:6.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,200000")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.extend(bench(size, args.repeat, Path(tmp)))
    show(rows)


if __name__ == "__main__":
    main()
