"""Makespans of ``--sf`` under xdist and of ``--shard``, against their lower bounds.

Usage (from the repository root, with the plugin and pytest-xdist installed)::

    python bench/scheduling.py                 # everything, 5 rounds
    python bench/scheduling.py --repeat 3 --sections xdist,plan

The suite is generated: tests that only sleep, with heavy-tailed durations
(most tests a few milliseconds, a few take seconds) and the slowest ones at
the end of the collection order, as in real suites.  Sleeping costs no CPU,
so the makespans do not depend on how many cores the machine has; what the
scheduler does shows directly.

Sections, each timed side by side with runs alternating (reversed every
other round), medians and spread reported:

``xdist``  ``-n 4 --sf`` (after one recorded run) against plain ``-n 4``
           (xdist's ``load``) and ``-n 4 --dist worksteal``, and xdist's own
           start-up: ``-n 4`` on a suite without tests.  Makespan over the
           lower bound ``max(longest, total / 4)``, plus module fixture set-ups.
``shard``  the slowest of ``--shard K/3`` against pytest-split's
           ``least_duration`` (``--splits 3 --group K``) given the same
           durations in its ``.test_durations`` file, and against the ideal
           ``max(longest, total / 3)``.  pytest-split is installed by this
           script into ``bench/results/pytest-split`` (``pip --target``), not
           into the environment, and loaded only for its own runs.
``plan``   the planners' cost at 50,000 tests: shard plan, xdist units and
           plan, slowest-first order, and reading the recorded durations.

Nothing here asserts a timing: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SPLIT_TARGET = RESULTS / "pytest-split"
SPLIT_VERSION = "0.11.0"
WORKERS = 4
SHARDS = 3
OURS = ["-p", "xdist.plugin", "-p", "pytest_crosscache.plugin"]
#: Timed runs leave the history as the recorded run left it, so that every
#: configuration and round plans from the same numbers.
FROZEN = ["-o", "cache_history=false"]

# --- the generated suite ------------------------------------------------------------


#: The long tests of the suite, seconds: together about 40% of it.
SLOW = (2.6, 2.2, 1.9, 1.6, 1.3, 1.0)


def suite_durations(tests: int, total: float, seed: int = 12) -> list[float]:
    """Heavy-tailed durations summing to about ``total`` seconds, in collection order.

    Most tests take milliseconds, one in ten a few hundred, and the few in
    :data:`SLOW` seconds: these come last in the collection, where xdist's
    own schedulers hand them out last, as happens in real suites.
    """
    rng = random.Random(seed)
    slow = [s * total / 14.0 for s in SLOW]
    others = tests - len(slow)
    medium = others // 10
    raw = [rng.uniform(0.1, 0.3) for _ in range(medium)]
    raw += [rng.uniform(0.005, 0.025) for _ in range(others - medium)]
    rng.shuffle(raw)
    scale = (total - sum(slow)) / sum(raw)
    return [round(v * scale, 4) for v in raw] + [round(v, 4) for v in slow]


# A module fixture logging its set-ups, to count them per scheduler, and each
# test's start and end: from the first start to the last end is the
# makespan of the test phase, apart from start-up and collection, which
# under a busy machine vary by seconds.
CONFTEST = """
import os
import time

import pytest


@pytest.fixture(scope="module", autouse=True)
def module_setup(request):
    log = os.environ.get("SETUP_LOG")
    if log:
        with open(log, "a") as f:
            f.write(request.module.__name__ + "\\n")


@pytest.fixture(autouse=True)
def timing(request):
    start = time.time()
    yield
    log = os.environ.get("TIMING_LOG")
    if log:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(log, "a") as f:
            f.write(f"{start} {time.time()} {worker} {request.node.nodeid}\\n")
"""


def makespan(log: Path) -> float:
    """From the first test's start to the last one's end, in ``log``."""
    lines = [line.split() for line in log.read_text().splitlines()]
    return max(float(f[1]) for f in lines) - min(float(f[0]) for f in lines)


def heaviest_worker(log: Path, nodeids: dict[str, float]) -> float:
    """The most seconds of sleep one worker was given: the balance itself.

    Unlike the makespan, it does not grow when a busy machine delays the
    workers between tests; it shows only who was given what.
    """
    loads: dict[str, float] = {}
    for fields in (line.split() for line in log.read_text().splitlines()):
        loads[fields[2]] = loads.get(fields[2], 0.0) + nodeids[fields[3]]
    return max(loads.values())


def generate_suite(
    project: Path, durations: Sequence[float], per_file: int
) -> dict[str, float]:
    """Files of sleeping tests; returns node id -> seconds it sleeps."""
    project.mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(CONFTEST)
    nodeids: dict[str, float] = {}
    for start in range(0, len(durations), per_file):
        name = f"test_m{start // per_file:03d}.py"
        lines = ["import time\n"]
        for offset, seconds in enumerate(durations[start : start + per_file]):
            lines.append(f"\ndef test_{offset:03d}():\n    time.sleep({seconds})\n")
            nodeids[f"{name}::test_{offset:03d}"] = seconds
        (project / name).write_text("".join(lines))
    return nodeids


def lower_bound(seconds: Sequence[float], parts: int) -> float:
    return max(max(seconds), sum(seconds) / parts)


# --- running pytest ------------------------------------------------------------------


def run_pytest(
    project: Path,
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
) -> tuple[float, str]:
    """Run pytest in ``project``; return (wall seconds, stdout)."""
    full_env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", **(env or {}))
    full_env.pop("PYTEST_ADDOPTS", None)
    for name in ("GITHUB_RUN_ID", "CI_PIPELINE_ID", "CIRCLE_WORKFLOW_ID"):
        full_env.pop(name, None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:terminalprogress", *args]
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=project, env=full_env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 5):
        raise RuntimeError(
            f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return elapsed, proc.stdout


def stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "rounds": len(values),
        "samples": list(values),
    }


def alternate(
    names: Sequence[str], repeat: int, one_run: Callable[[str], float]
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeat):
        order = list(names) if round_ % 2 == 0 else list(reversed(names))
        for name in order:
            samples[name].append(one_run(name))
        shown = "  ".join(f"{n}={samples[n][-1]:.2f}s" for n in names)
        print(f"    round {round_ + 1}: {shown}", flush=True)
    return samples


def record_durations(project: Path, nodeids: dict[str, float]) -> tuple[str, dict]:
    """One recorded run; returns where the durations came from, and them."""
    from pytest_crosscache.backends.directory import DirectoryBackend
    from pytest_crosscache.history.store import import_durations
    from pytest_crosscache.history.store import recorded_durations_from_backend

    run_pytest(project, [*OURS, "-n", str(WORKERS)])
    backend = DirectoryBackend(project / ".pytest_cache")
    recorded = recorded_durations_from_backend(backend)
    if len(recorded) >= len(nodeids):
        return "measured by one recorded run (-n 4)", recorded
    import_durations(backend, nodeids)
    return "imported: the slept seconds", recorded_durations_from_backend(backend)


# --- sections -----------------------------------------------------------------------


def bench_xdist(work: Path, nodeids: dict[str, float], repeat: int) -> dict:
    project = work / "suite"
    empty = work / "empty"
    empty.mkdir()
    (empty / "pytest.ini").write_text("[pytest]\n")
    source, _ = record_durations(project, nodeids)
    print(f"  durations: {source}")
    configs = {
        "sf": ["-n", str(WORKERS), "--sf"],
        "load": ["-n", str(WORKERS)],
        "worksteal": ["-n", str(WORKERS), "--dist", "worksteal"],
        "empty": ["-n", str(WORKERS)],
    }
    _, out = run_pytest(project, [*OURS, *FROZEN, *configs["sf"], "-vv"])
    if "scheduling tests via SlowFirstScheduling" not in out:
        raise RuntimeError(f"--sf did not schedule:\n{out}")
    setups: dict[str, list[int]] = {name: [] for name in configs}
    spans: dict[str, list[float]] = {name: [] for name in configs}
    walls: dict[str, list[float]] = {name: [] for name in configs}
    heaviest: dict[str, list[float]] = {name: [] for name in configs}

    def one_run(name: str) -> float:
        setup_log = work / f"setups-{name}.log"
        timing_log = work / f"timing-{name}.log"
        setup_log.unlink(missing_ok=True)
        timing_log.unlink(missing_ok=True)
        where = empty if name == "empty" else project
        env = {"SETUP_LOG": str(setup_log), "TIMING_LOG": str(timing_log)}
        elapsed, _ = run_pytest(where, [*OURS, *FROZEN, *configs[name]], env=env)
        walls[name].append(elapsed)
        if name == "empty":
            return elapsed
        setups[name].append(len(setup_log.read_text().splitlines()))
        spans[name].append(makespan(timing_log))
        heaviest[name].append(heaviest_worker(timing_log, nodeids))
        return spans[name][-1]

    alternate(list(configs), repeat, one_run)
    bound = lower_bound(list(nodeids.values()), WORKERS)
    result: dict = {
        "durations_source": source,
        "lower_bound": bound,
        "total_sleep": sum(nodeids.values()),
        "longest": max(nodeids.values()),
        "modules": len({n.split("::")[0] for n in nodeids}),
        "startup_wall": stats(walls["empty"]),
        "configs": {},
    }
    for name in ("sf", "load", "worksteal"):
        result["configs"][name] = {
            "makespan": stats(spans[name]),
            "over_bound": statistics.median(spans[name]) / bound,
            "wall": stats(walls[name]),
            "heaviest_worker": stats(heaviest[name]),
            "heaviest_over_bound": statistics.median(heaviest[name]) / bound,
            "module_setups": statistics.median(setups[name]),
        }
    for other in ("load", "worksteal"):
        paired = [a / b for a, b in zip(spans["sf"], spans[other], strict=True)]
        result["configs"][other]["sf_over_this_paired"] = statistics.median(paired)
    print(
        f"  lower bound {bound:.2f}s; xdist start-up (empty suite, wall) "
        f"{statistics.median(walls['empty']):.2f}s "
        f"[{min(walls['empty']):.2f}-{max(walls['empty']):.2f}]"
    )
    for name, entry in result["configs"].items():
        span = entry["makespan"]
        paired = entry.get("sf_over_this_paired")
        print(
            f"  {name:>9}: makespan {span['median']:.2f}s "
            f"[{span['min']:.2f}-{span['max']:.2f}] = {entry['over_bound']:.3f}x bound"
            f"; heaviest worker {entry['heaviest_over_bound']:.3f}x bound"
            f"; wall {entry['wall']['median']:.2f}s; module set-ups "
            f"{entry['module_setups']:g}"
            + (f"; sf/{name} paired {paired:.3f}" if paired else "")
        )
    return result


def ensure_pytest_split() -> Path:
    if not (SPLIT_TARGET / "pytest_split").is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(SPLIT_TARGET),
                f"pytest-split=={SPLIT_VERSION}",
            ],
            check=True,
        )
    return SPLIT_TARGET


def listed(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "::" in line and " " not in line]


def bench_shard(work: Path, nodeids: dict[str, float], repeat: int) -> dict:
    project = work / "suite"
    split_path = ensure_pytest_split()
    from pytest_crosscache.backends.directory import DirectoryBackend
    from pytest_crosscache.history.store import recorded_durations_from_backend

    # pytest-split reads the same numbers the history holds.
    recorded = recorded_durations_from_backend(
        DirectoryBackend(project / ".pytest_cache")
    )
    durations_file = project / ".test_durations"
    durations_file.write_text(json.dumps(recorded, indent=1))
    split_env = {"PYTHONPATH": str(split_path)}

    def ours(index: int, key: str) -> list[str]:
        return [*OURS, *FROZEN, f"--shard={index}/{SHARDS}", f"--shard-key={key}"]

    def split(index: int) -> list[str]:
        return [
            "-p",
            "pytest_split.plugin",
            f"--splits={SHARDS}",
            f"--group={index}",
            "--splitting-algorithm=least_duration",
            f"--durations-path={durations_file}",
        ]

    # What each shard runs, and the time the durations predict for it.
    planned: dict[str, list[float]] = {}
    for name in ("crosscache", "pytest-split"):
        loads = []
        for index in range(1, SHARDS + 1):
            if name == "crosscache":
                args, env = ours(index, "listing"), None
            else:
                args, env = split(index), split_env
            _, out = run_pytest(project, [*args, "--collect-only"], env=env)
            loads.append(sum(nodeids[n] for n in listed(out)))
        planned[name] = loads
    ideal = lower_bound(list(nodeids.values()), SHARDS)

    rounds = {"n": 0}

    def one_run(name: str) -> float:
        # Every shard of a pipeline, one after another: the slowest counts.
        rounds["n"] += 1
        spans = []
        for index in range(1, SHARDS + 1):
            log = work / f"shard-timing-{name}-{index}.log"
            log.unlink(missing_ok=True)
            if name == "crosscache":
                args, env = ours(index, f"round-{rounds['n']}"), {}
            else:
                args, env = split(index), dict(split_env)
            run_pytest(project, args, env={**env, "TIMING_LOG": str(log)})
            spans.append(makespan(log))
        return max(spans)

    samples = alternate(["crosscache", "pytest-split"], repeat, one_run)
    result: dict = {"ideal": ideal, "configs": {}}
    for name in ("crosscache", "pytest-split"):
        result["configs"][name] = {
            "planned_loads": planned[name],
            "planned_over_ideal": max(planned[name]) / ideal,
            "slowest_shard": stats(samples[name]),
            "measured_over_ideal": statistics.median(samples[name]) / ideal,
        }
    paired = [
        a / b
        for a, b in zip(samples["crosscache"], samples["pytest-split"], strict=True)
    ]
    result["crosscache_over_split_paired"] = statistics.median(paired)
    print(f"  ideal {ideal:.2f}s")
    for name, entry in result["configs"].items():
        span = entry["slowest_shard"]
        print(
            f"  {name:>12}: planned {[round(v, 2) for v in entry['planned_loads']]} "
            f"= {entry['planned_over_ideal']:.3f}x ideal; slowest shard "
            f"{span['median']:.2f}s [{span['min']:.2f}-{span['max']:.2f}] = "
            f"{entry['measured_over_ideal']:.3f}x ideal"
        )
    print(f"  crosscache/pytest-split paired: {statistics.median(paired):.3f}")
    return result


def bench_plan(repeat: int, size: int = 50_000) -> dict:
    from pytest_crosscache.backends.directory import DirectoryBackend
    from pytest_crosscache.history.store import import_durations
    from pytest_crosscache.history.store import recorded_durations_from_backend
    from pytest_crosscache.scheduling.estimate import estimate
    from pytest_crosscache.scheduling.order import slowest_first
    from pytest_crosscache.scheduling.plan import ShardPlan
    from pytest_crosscache.scheduling.units import distribute
    from pytest_crosscache.scheduling.units import per_test_units

    rng = random.Random(5)
    nodeids = [
        f"tests/area{i // 5000}/test_mod{i // 100:04d}.py::test_{i % 100}"
        for i in range(size)
    ]
    recorded = {n: rng.lognormvariate(-4, 1.5) for n in nodeids[: size - size // 20]}
    paths = [tuple(n.split("::")[0].split("/")) for n in nodeids]

    def shard_plan() -> None:
        seconds = estimate(nodeids, recorded).seconds
        ShardPlan.build(nodeids, seconds, SHARDS)

    def xdist_plan() -> None:
        seconds = estimate(nodeids, recorded).seconds
        distribute(per_test_units(nodeids, seconds, [0] * size, WORKERS), WORKERS)

    def order() -> None:
        seconds = estimate(nodeids, recorded).seconds
        slowest_first(paths, seconds, [0] * size)

    with tempfile.TemporaryDirectory() as tmp:
        backend = DirectoryBackend(Path(tmp))
        import_durations(backend, recorded)

        def read() -> None:
            recorded_durations_from_backend(backend)

        tasks = {
            "shard plan (estimate + LPT, 3 shards)": shard_plan,
            "xdist plan (estimate + units + LPT, 4 workers)": xdist_plan,
            "slowest-first order (estimate + scope tree)": order,
            "reading recorded durations (history store)": read,
        }
        # CPU time, less disturbed than wall time by other processes on a
        # shared machine; a fixed loop's time tells how fast the CPU was.
        start = time.process_time()
        sum(range(10**7))
        result: dict = {"calibration_sum_1e7": time.process_time() - start}
        took = result["calibration_sum_1e7"]
        print(f"  (calibration: sum(range(10**7)) took {took:.2f} s)")
        for label, task in tasks.items():
            times = []
            walls = []
            for _ in range(repeat):
                start, wall = time.process_time(), time.perf_counter()
                task()
                times.append(time.process_time() - start)
                walls.append(time.perf_counter() - wall)
            result[label] = {"cpu": stats(times), "wall": stats(walls)}
            print(
                f"  {label}: {1000 * statistics.median(times):.0f} ms CPU "
                f"[{1000 * min(times):.0f}-{1000 * max(times):.0f}], "
                f"wall {1000 * statistics.median(walls):.0f} ms",
                flush=True,
            )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tests", type=int, default=240)
    parser.add_argument(
        "--total", type=float, default=14.0, help="seconds of sleep per run"
    )
    parser.add_argument("--sections", default="xdist,shard,plan")
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    load = os.getloadavg()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load[0]:.1f} at start",
        flush=True,
    )
    results: dict = {
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_start": load,
        },
        "tests": args.tests,
        "total_sleep": args.total,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"scheduling-{time.strftime('%Y%m%d-%H%M%S')}.json"
    durations = suite_durations(args.tests, args.total)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nodeids = generate_suite(work / "suite", durations, per_file=20)
        if "xdist" in sections:
            print(f"xdist -n {WORKERS}, {args.tests} tests, {args.total:g} s of sleep")
            results["xdist"] = bench_xdist(work, nodeids, args.repeat)
            out.write_text(json.dumps(results, indent=1))
        if "shard" in sections:
            print(f"--shard K/{SHARDS} against pytest-split {SPLIT_VERSION}")
            if not (work / "suite" / ".pytest_cache").exists():
                print(f"  durations: {record_durations(work / 'suite', nodeids)[0]}")
            results["shard"] = bench_shard(work, nodeids, args.repeat)
            out.write_text(json.dumps(results, indent=1))
    if "plan" in sections:
        print("planning cost at 50,000 tests")
        results["plan"] = bench_plan(args.repeat)
    results["load_at_end"] = os.getloadavg()
    out.write_text(json.dumps(results, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
