"""Size and speed of ``crosscache report`` on a large history, and its load in Chromium.

Usage (from the repository root, with the plugin installed and Chromium on PATH)::

    python bench/report.py                         # 50,000 tests x 20 runs
    python bench/report.py --tests 10000 --repeat 3

Steps, each timed ``--repeat`` times (medians and the spread are printed):

1. storing a generated history in a cache directory, run by run, as 20
   pytest sessions would (once: it is the setup, shown for scale);
2. ``crosscache report --html`` as a process: start-up, reading the store,
   flaky analysis, shard plan, rendering and writing the page;
3. the same steps in this process, one by one;
4. opening the page in headless Chromium, from navigation to the ``load``
   event, in one browser (a new page load each time) and, for the first
   load, in a fresh browser.

Nothing here asserts a timing: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The history generator and the Chromium driver are shared with the tests.
sys.path.insert(0, str(HERE.parent / "testing"))

import chromium  # noqa: E402
from history_gen import generate  # noqa: E402
from pytest_crosscache.backends.directory import DirectoryBackend  # noqa: E402
from pytest_crosscache.history.flaky import classify  # noqa: E402
from pytest_crosscache.history.model import History  # noqa: E402
from pytest_crosscache.history.store import load_history_from_backend  # noqa: E402
from pytest_crosscache.history.store import record_run  # noqa: E402
from pytest_crosscache.history.store import recorded_durations_from_backend  # noqa: E402
from pytest_crosscache.report.data import build_report  # noqa: E402
from pytest_crosscache.report.html import render  # noqa: E402
from pytest_crosscache.scheduling.plan import ShardPlan  # noqa: E402


def spread(samples: list[float]) -> str:
    median = statistics.median(samples)
    return (
        f"median {median * 1000:8.1f} ms   (min {min(samples) * 1000:.1f}, "
        f"max {max(samples) * 1000:.1f}, n={len(samples)})"
    )


def timed(label: str, repeat: int, step: Callable[[], object]) -> object:
    samples = []
    result: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = step()
        samples.append(time.perf_counter() - start)
    print(f"  {label:<34} {spread(samples)}", flush=True)
    return result


def store(history: History, cachedir: Path) -> None:
    backend = DirectoryBackend(cachedir)
    columns: dict[str, dict[str, tuple[str, float]]] = {run: {} for run in history.runs}
    for test in history.tests.values():
        for outcome, seconds, run_id in zip(
            test.outcomes, test.durations, test.run_ids, strict=True
        ):
            columns[run_id][test.nodeid] = (outcome, seconds)
    for run in sorted(history.runs.values(), key=lambda run: run.started):
        record_run(backend, run, columns[run.id])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="also copy the page here")
    args = parser.parse_args()

    print(
        f"{platform.node()}: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}"
    )
    binary = chromium.find_chromium()
    work = Path(tempfile.mkdtemp(prefix="crosscache-bench-report-"))
    project = work / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    cachedir = project / ".pytest_cache"

    print(f"\n{args.tests:,} tests x {args.runs} runs")
    start = time.perf_counter()
    history, _ = generate(tests=args.tests, runs=args.runs)
    print(f"  generated in {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    store(history, cachedir)
    stored = sum(f.stat().st_size for f in cachedir.rglob("*") if f.is_file())
    print(
        f"  stored in {time.perf_counter() - start:.1f} s "
        f"({stored / 2**20:.1f} MiB in {cachedir.name})",
        flush=True,
    )

    page = work / "report.html"
    command = [sys.executable, "-m", "pytest_crosscache", "report", "--html", str(page)]
    env = {**os.environ, "PYTEST_CACHE_BACKEND": ""}
    print("\nmaking the page")
    timed(
        "crosscache report (a process)",
        args.repeat,
        lambda: subprocess.run(
            command, cwd=project, env=env, check=True, capture_output=True
        ),
    )
    size = page.stat().st_size
    backend = DirectoryBackend(cachedir)
    loaded = timed(
        "load_history_from_backend",
        args.repeat,
        lambda: load_history_from_backend(backend),
    )
    assert isinstance(loaded, History)
    medians = timed(
        "recorded_durations_from_backend",
        args.repeat,
        lambda: recorded_durations_from_backend(backend),
    )
    assert isinstance(medians, dict)
    verdicts = timed("classify", args.repeat, lambda: classify(loaded))
    nodeids = sorted(medians)
    jobs = timed(
        "ShardPlan.build (4 jobs)",
        args.repeat,
        lambda: ShardPlan.build(nodeids, [medians[n] for n in nodeids], 4).tests,
    )
    report = timed(
        "build_report",
        args.repeat,
        lambda: build_report(
            loaded,
            verdicts=verdicts,  # type: ignore[arg-type]
            jobs=jobs,  # type: ignore[arg-type]
            durations=medians,
        ),
    )
    timed("render", args.repeat, lambda: render(report))  # type: ignore[arg-type]
    print(f"  page size: {size:,} bytes ({size / 2**20:.2f} MiB)")
    if args.keep:
        args.keep.write_bytes(page.read_bytes())

    if binary is None:
        print("\nno Chromium found: load times not measured")
        return 0
    print(f"\nopening the page in {binary}")
    cold = []
    for _ in range(max(args.repeat // 2, 1)):
        start = time.perf_counter()
        with chromium.start(binary) as browser:
            started = time.perf_counter() - start
            load = browser.load(page)
        cold.append(load.load_seconds)
        assert not load.errors, load.errors
    print(f"  {'fresh browser, navigation to load':<34} {spread(cold)}")
    print(f"  {'(browser start-up)':<34} {started * 1000:8.1f} ms (last)")
    with chromium.start(binary) as browser:
        warm = []
        for _ in range(args.repeat):
            load = browser.load(page)
            warm.append(load.load_seconds)
            assert not load.errors, load.errors
            assert load.requests == [page.resolve().as_uri()], load.requests
        print(f"  {'same browser, navigation to load':<34} {spread(warm)}")
        nodes = browser.evaluate("document.getElementsByTagName('*').length")
        print(f"  elements in the page: {nodes:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
