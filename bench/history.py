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
            full ``load_history`` take on it;
``cost``    the history's in-process costs side by side on a ``--size``
            suite whose window is full (``cache_history_runs`` runs
            recorded): recording one more full run as a session does
            (whole-suite collection, this run's failures read back),
            ``recorded_durations``, a full ``load_history`` and
            ``classify`` of it; ``--cost-repeat`` rounds in alternating
            order, medians with the spread, wall and CPU time.

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
SECTIONS = ("full", "lf", "memory", "size", "cost")
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


def bench_cost(work: Path, size: int, repeat: int) -> dict:
    """The in-process costs of the history at ``size`` tests, full window."""
    from pytest_crosscache.backends.directory import DirectoryBackend
    from pytest_crosscache.history.flaky import classify
    from pytest_crosscache.history.model import Run
    from pytest_crosscache.history.store import load_history_from_backend
    from pytest_crosscache.history.store import record_run
    from pytest_crosscache.history.store import recorded_durations_from_backend

    state = work / f"cost-{size}"
    if not state.exists():
        record_runs(state, size, WINDOW)
    ids, failing = suites.suite_ids(size)
    failed = set(failing)
    collected = set(ids)
    rng = random.Random(-size)
    results = {
        nodeid: ("F" if nodeid in failed else "P", rng.uniform(1e-4, 3e-4))
        for nodeid in ids
    }
    backend = DirectoryBackend(state)
    scratch = work / "cost-scratch"
    history = load_history_from_backend(backend)

    def record() -> object:
        return record_run(
            DirectoryBackend(scratch),
            Run(
                id=os.urandom(8).hex(),
                started=time.time(),
                revision="0" * 40,
                ci=False,
                duration=60.0,
                tests=len(ids),
                failed=len(failed),
            ),
            results,
            window=WINDOW,
            collected=collected,
            want=failing,
        )

    def fresh_copy() -> None:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(state, scratch)

    pieces: dict[str, tuple[Callable[[], object], Callable[[], None] | None]] = {
        "record one full run": (record, fresh_copy),
        "recorded_durations": (lambda: recorded_durations_from_backend(backend), None),
        "load_history (all)": (lambda: load_history_from_backend(backend), None),
        "classify (all)": (lambda: classify(history), None),
    }
    wall: dict[str, list[float]] = {name: [] for name in pieces}
    cpu: dict[str, list[float]] = {name: [] for name in pieces}
    for round_ in range(repeat):
        names = list(pieces) if round_ % 2 == 0 else list(reversed(pieces))
        for name in names:
            func, prepare = pieces[name]
            if prepare is not None:
                prepare()
            begin, begin_cpu = time.perf_counter(), time.process_time()
            func()
            wall[name].append(time.perf_counter() - begin)
            cpu[name].append(time.process_time() - begin_cpu)
    shutil.rmtree(scratch, ignore_errors=True)
    result = {
        name: {
            "median": statistics.median(wall[name]),
            "min": min(wall[name]),
            "max": max(wall[name]),
            "cpu_median": statistics.median(cpu[name]),
            "rounds": repeat,
        }
        for name in pieces
    }
    result["tests"] = size
    result["window"] = WINDOW
    result["calibration"] = calibration()
    for line in cost_lines(result):
        print(f"  {line}", flush=True)
    return result


def calibration() -> float:
    """CPU seconds of a fixed loop: how fast this machine is right now.

    On a busy machine shared with others the load average does not tell
    (other virtual machines do not show in it); this does.
    """
    samples = []
    for _ in range(3):
        begin = time.process_time()
        sum(range(10**7))
        samples.append(time.process_time() - begin)
    return statistics.median(samples)


def cost_lines(cost: dict) -> list[str]:
    lines = [
        f"in-process costs at {cost['tests']} tests, {cost['window']} runs in the "
        "window (wall median, min-max, CPU median); a fixed loop, "
        f"sum(range(10**7)), took {cost.get('calibration', float('nan')):.2f}s CPU:"
    ]
    for name, timing in cost.items():
        if not isinstance(timing, dict):
            continue
        lines.append(
            f"  {name:<22} {timing['median'] * 1000:8.1f} ms  "
            f"({timing['min'] * 1000:.1f}-{timing['max'] * 1000:.1f}, "
            f"CPU {timing['cpu_median'] * 1000:.1f} ms, {timing['rounds']} rounds)"
        )
    return lines


def report(results: dict) -> str:
    lines = [
        f"Measured {results['date']} on {results['machine']}, Python "
        f"{results['python']}, pytest {results['pytest']}; load average at start "
        f"{results['load']}.",
        "",
    ]
    if results["timings"]:
        lines.append(
            f"{'workload':<26} {'rounds':>6} {'crosscache':>11} {'nohistory':>10} "
            f"{'builtin':>9} {'x nohist':>9} {'x builtin':>10} {'paired nh':>10} "
            f"{'paired b':>9}"
        )
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
    if "cost" in results:
        lines.extend(cost_lines(results["cost"]))
    lines.append(f"load average at the end {results.get('load_end', '?')}.")
    for section, (before, *after) in results.get("conditions", {}).items():
        lines.append(f"{section}: before {before}; after {', '.join(after) or '?'}")
    return "\n".join(lines)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--lf-size", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory-repeat", type=int, default=1)
    parser.add_argument("--cost-repeat", type=int, default=7)
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
        "load": load_average(),
        "timings": {},
    }

    def save() -> None:
        (ns.out / "history.json").write_text(json.dumps(results, indent=2))

    run.compile_package()
    with tempfile.TemporaryDirectory(prefix="crosscache-history-bench-") as tmp:
        work = Path(tmp)
        for section in sections:
            conditions = (
                f"load average {load_average()}, fixed loop {calibration():.2f}s"
            )
            results.setdefault("conditions", {})[section] = [conditions]
            print(f"{section}: {conditions}", flush=True)
            if section == "size":
                results["size"] = bench_size(work, ns.size, 30)
            elif section == "cost":
                results["cost"] = bench_cost(work, ns.size, ns.cost_repeat)
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
            results["load_end"] = load_average()
            conditions = (
                f"load average {load_average()}, fixed loop {calibration():.2f}s"
            )
            results["conditions"][section].append(conditions)
            print(f"{section} done: {conditions}", flush=True)
            save()
    text = report(results)
    (ns.out / "history.txt").write_text(text + "\n")
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
