"""What the test history costs: time, memory and size, side by side.

Usage (from the repository root, with the plugin installed)::

    python bench/history.py                          # every section
    python bench/history.py --sections full --repeat 7
    python bench/history.py --sections lf,memory --lf-size 200000

Sections:

``full``    a full run of a ``--size`` suite (default 50k tests), each
            configuration starting from the state its own previous full
            runs leave (for ``crosscache``: a history already holding
            ``cache_history_runs`` runs, so every run also trims);
``lf``      an ``--lf`` run of a ``--lf-size`` suite (default 200k tests)
            from the same kind of state: history must not make a small run
            pay for the whole suite's record;
``memory``  peak memory of a full ``--lf-size`` run (fewer rounds: minutes
            each);
``size``    the history's size in the cache after 30 recorded full runs of
            a ``--size`` suite, and how long ``recorded_durations`` and a
            full ``load_history`` take on it.

Configurations: ``crosscache`` (history on, the default), ``nohistory``
(this plugin with ``cache_history = false``) and ``builtin`` (pytest's own
provider).  Runs alternate between configurations, in reversed order every
other round; medians, spreads and ratios (of medians, and the median of
per-round ratios: "paired") are printed and saved to ``--out``.  Nothing
here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import run
import suites

CONFIGS: dict[str, list[str]] = {
    "crosscache": ["-p", "pytest_crosscache.plugin"],
    "nohistory": ["-p", "pytest_crosscache.plugin", "-o", "cache_history=false"],
    "builtin": [],
}
SECTIONS = ("full", "lf", "memory", "size")
WINDOW = 20


def record_runs(cachedir: Path, size: int, runs: int) -> float:
    """Record ``runs`` full runs of ``suites.generate_suite(size)`` directly.

    The same store calls the recorder makes at the end of a session, without
    running pytest: returns the median seconds one recording took.
    """
    from pytest_crosscache.backends.directory import DirectoryBackend
    from pytest_crosscache.history.model import Run
    from pytest_crosscache.history.store import record_run

    ids, failing = suites.suite_ids(size)
    failed = set(failing)
    backend = DirectoryBackend(cachedir)
    rng = random.Random(size)
    took = []
    started = time.time() - 3600.0 * runs
    for number in range(runs):
        results = {
            nodeid: ("F" if nodeid in failed else "P", rng.uniform(1e-4, 3e-4))
            for nodeid in ids
        }
        begin = time.perf_counter()
        record_run(
            backend,
            Run(
                id=f"{number:016x}",
                started=started + 3600.0 * number,
                revision="0" * 40,
                ci=False,
                duration=60.0,
                tests=len(ids),
                failed=len(failed),
            ),
            results,
            window=WINDOW,
        )
        took.append(time.perf_counter() - begin)
    return statistics.median(took)


def seeds(work: Path, size: int) -> dict[str, Path]:
    """The cache each configuration starts from: a full run's state."""
    made = {}
    for name in CONFIGS:
        seed = work / f"seed-{size}-{name}"
        if not seed.exists():
            suites.write_full_run_cache(seed, size)
            if name == "crosscache":
                record_runs(seed, size, WINDOW)
        made[name] = seed
    return made


def timed(
    label: str,
    project: Path,
    work: Path,
    starts: dict[str, Path],
    args: list[str],
    repeat: int,
) -> dict:
    def one_run(name: str) -> tuple[float, int]:
        cachedir = work / "cache-under-test"
        shutil.rmtree(cachedir, ignore_errors=True)
        shutil.copytree(starts[name], cachedir)
        return run.run_pytest(project, cachedir, [*CONFIGS[name], *args])

    result: dict = run.time_configs(label, list(CONFIGS), repeat, one_run)
    for other in ("nohistory", "builtin"):
        result[f"x {other}"] = result["crosscache"]["median"] / result[other]["median"]
        result[f"paired x {other}"] = run.paired_ratio(result, "crosscache", other)
    return result


def bench_size(work: Path, size: int, runs: int) -> dict:
    from pytest_crosscache.backends.directory import DirectoryBackend
    from pytest_crosscache.history.store import load_history_from_backend
    from pytest_crosscache.history.store import recorded_durations_from_backend

    cachedir = work / f"size-{size}"
    shutil.rmtree(cachedir, ignore_errors=True)
    per_run = record_runs(cachedir, size, runs)
    history_dir = cachedir / "v" / "crosscache" / "history"
    total = sum(p.stat().st_size for p in history_dir.rglob("*") if p.is_file())
    backend = DirectoryBackend(cachedir)

    def median_time(func: Callable[[], object], rounds: int) -> float:
        samples = []
        for _ in range(rounds):
            begin = time.perf_counter()
            func()
            samples.append(time.perf_counter() - begin)
        return statistics.median(samples)

    result = {
        "tests": size,
        "runs": runs,
        "bytes": total,
        "record_seconds": per_run,
        "recorded_durations_seconds": median_time(
            lambda: recorded_durations_from_backend(backend), 11
        ),
        "load_history_seconds": median_time(
            lambda: load_history_from_backend(backend), 3
        ),
    }
    print(
        f"  history of {size} tests after {runs} runs: {total / 1e6:.2f} MB; "
        f"recording one run {per_run:.3f}s; recorded_durations "
        f"{result['recorded_durations_seconds'] * 1000:.1f} ms; load_history "
        f"{result['load_history_seconds']:.2f}s",
        flush=True,
    )
    return result


def report(results: dict) -> str:
    lines = [
        f"Measured {results['date']} on {results['machine']}, Python "
        f"{results['python']}, pytest {results['pytest']}; load average at start "
        f"{results['load']}.",
        "",
        f"{'workload':<26} {'rounds':>6} {'crosscache':>11} {'nohistory':>10} "
        f"{'builtin':>9} {'x nohist':>9} {'x builtin':>10} {'paired nh':>10} "
        f"{'paired b':>9}",
    ]
    for label, timings in results["timings"].items():
        cells = [f"{timings[c]['median']:.3f}s" for c in CONFIGS]
        lines.append(
            f"{label:<26} {timings['crosscache']['rounds']:>6} {cells[0]:>11} "
            f"{cells[1]:>10} {cells[2]:>9} {timings['x nohistory']:>9.3f} "
            f"{timings['x builtin']:>10.3f} {timings['paired x nohistory']:>10.3f} "
            f"{timings['paired x builtin']:>9.3f}"
        )
        spread = ", ".join(
            f"{c} {timings[c]['min']:.2f}-{timings[c]['max']:.2f}s "
            f"(peak {timings[c]['peak_rss_kib'] / 1024:.0f} MiB)"
            for c in CONFIGS
        )
        lines.append(f"{'':<26} spread: {spread}")
    if "size" in results:
        size = results["size"]
        lines.append(
            f"history of {size['tests']} tests after {size['runs']} runs: "
            f"{size['bytes'] / 1e6:.2f} MB; recording a full run "
            f"{size['record_seconds']:.3f}s; recorded_durations "
            f"{size['recorded_durations_seconds'] * 1000:.1f} ms; load_history "
            f"{size['load_history_seconds']:.2f}s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--lf-size", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=run.HERE / "results")
    ns = parser.parse_args(argv)
    sections = [s for s in ns.sections.split(",") if s]
    if unknown := set(sections) - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; know {list(SECTIONS)}")
    import pytest

    ns.out.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "pytest": pytest.__version__,
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "timings": {},
    }

    def save() -> None:
        (ns.out / "history.json").write_text(json.dumps(results, indent=2))

    run.compile_package()
    with tempfile.TemporaryDirectory(prefix="crosscache-history-bench-") as tmp:
        work = Path(tmp)
        for section in sections:
            if section == "size":
                results["size"] = bench_size(work, ns.size, 30)
            else:
                size = ns.size if section == "full" else ns.lf_size
                project = work / f"suite-{size}"
                suites.generate_suite(project, size)
                # One collection writes pytest's rewritten modules first.
                run.run_pytest(project, work / "warm-up", ["--collect-only"])
                starts = seeds(work, size)
                args = ["--lf"] if section == "lf" else []
                repeat = ns.memory_repeat if section == "memory" else ns.repeat
                label = f"{size} tests, {'--lf' if section == 'lf' else 'full run'}"
                results["timings"][label] = timed(
                    label, project, work, starts, args, repeat
                )
            save()
    text = report(results)
    (ns.out / "history.txt").write_text(text + "\n")
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
