"""Time pytest-crosscache against pytest's builtin cache provider, in one run.

Usage (from the repository root, with the plugin installed)::

    python bench/run.py                      # everything, 10k/50k/200k tests
    python bench/run.py --sizes 10000 --repeat 5 --workloads full,lf
    python bench/run.py --quick              # small sizes, for a smoke check

Three configurations run the same generated suites:

``crosscache``  pytest with this plugin,
``builtin``     pytest's own provider (this plugin not loaded),
``nocache``     neither (``-p no:cacheprovider``), the floor.

Every configuration runs with plugin autoloading switched off, so no other
installed plugin (xdist, randomly, hypothesis...) is timed.  Runs of the
configurations alternate, in reversed order every other round, and the
table reports medians of ``--repeat`` rounds and their ratios, plus the
median of the crosscache/builtin ratios within each round ("paired"), which
a machine drifting in speed disturbs less.  Nothing here
asserts a timing: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

import api
import suites

HERE = Path(__file__).resolve().parent
LAUNCH = HERE / "launch.py"

CONFIGS: dict[str, list[str]] = {
    "crosscache": ["-p", "pytest_crosscache.plugin"],
    "builtin": [],
    "nocache": ["-p", "no:cacheprovider"],
}

# For each workload: the options of the timed run and of the run that
# prepares the cache state it starts from (None: start from an empty cache).
WORKLOADS: dict[str, tuple[list[str], list[str] | None]] = {
    "full": ([], []),
    "lf": (["--lf"], []),
    "ff": (["--ff"], []),
    "nf": (["--nf"], []),
    "sw": (["--sw"], ["--sw"]),
    "cache-show": (["--cache-show"], []),
}
# Above this many tests, the state a full run leaves is written directly
# instead of by a preparing run of each provider.
SYNTHETIC_SEED_ABOVE = 50_000
# Workloads whose options need a cache provider: not run without one.
NEEDS_CACHE = {"lf", "ff", "nf", "sw", "cache-show"}


def run_pytest(project: Path, cachedir: Path, args: Sequence[str]) -> tuple[float, int]:
    """Run pytest in a fresh process; return (wall seconds, peak RSS in KiB)."""
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("PYTEST_ADDOPTS", None)
    # Let pytest cache rewritten test modules, as on a developer's machine.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        cmd = [
            sys.executable,
            str(LAUNCH),
            report.name,
            "-q",
            "-o",
            f"cache_dir={cachedir}",
            "-p",
            "no:terminalprogress",
            *args,
        ]
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        elapsed = time.perf_counter() - start
        # 1: the suites' deliberate failures; 2: --sw stopping at one; 5: no tests.
        if proc.returncode not in (0, 1, 2, 5):
            raise RuntimeError(
                f"{cmd} failed ({proc.returncode}):\n{proc.stderr.decode()}"
            )
        maxrss = json.loads(Path(report.name).read_text() or "{}").get("maxrss", 0)
    return elapsed, maxrss


def time_configs(
    label: str,
    configs: Sequence[str],
    repeat: int,
    one_run: Callable[[str], tuple[float, int]],
) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {name: [] for name in configs}
    memory: dict[str, list[int]] = {name: [] for name in configs}
    for round_ in range(repeat):
        order = list(configs) if round_ % 2 == 0 else list(reversed(configs))
        for name in order:
            elapsed, rss = one_run(name)
            samples[name].append(elapsed)
            memory[name].append(rss)
    result = {
        name: {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "peak_rss_kib": max(memory[name]),
            "rounds": len(values),
            # In round order, for ratios within rounds (see paired_ratio).
            "samples": values,
        }
        for name, values in samples.items()
    }
    shown = "  ".join(f"{n}={r['median']:.3f}s" for n, r in result.items())
    print(f"  {label}: {shown}", flush=True)
    return result


def bench_suite(
    size: int,
    workloads: Sequence[str],
    repeat: int,
    work: Path,
    results: dict[str, dict],
    save: Callable[[], None],
    only: Sequence[str] = tuple(CONFIGS),
) -> None:
    """Time ``workloads`` on a suite of ``size`` tests into ``results``.

    ``save`` is called after each workload, so an interrupted run keeps
    what it measured.
    """
    project = work / f"suite-{size}"
    suites.generate_suite(project, size)
    # Workloads that start from the same state share one prepared cache: at
    # 200k tests every preparing run costs minutes.
    made: dict[tuple[str, tuple[str, ...]], Path] = {}

    def prepared(name: str, prepare: list[str] | None) -> Path | None:
        if prepare is None or name == "nocache":
            return None  # the run starts without a cache
        if (name, tuple(prepare)) not in made:
            seed = work / f"seed-{size}-{name}-{len(made)}"
            shutil.rmtree(seed, ignore_errors=True)
            if not prepare and size > SYNTHETIC_SEED_ABOVE:
                # The same bytes a full run would leave (checked at 1000
                # tests for both providers), minutes sooner.  One collection
                # still writes pytest's rewritten test modules, which the
                # first timed run would otherwise pay for.
                if not made:
                    run_pytest(project, work / "warm-up", ["--collect-only"])
                suites.write_full_run_cache(seed, size)
            else:
                run_pytest(project, seed, [*CONFIGS[name], *prepare])
            made[name, tuple(prepare)] = seed
        return made[name, tuple(prepare)]

    for workload in workloads:
        args, prepare = WORKLOADS[workload]
        configs = [
            c
            for c in CONFIGS
            if c in only and not (workload in NEEDS_CACHE and c == "nocache")
        ]
        seeds = {name: prepared(name, prepare) for name in configs}

        def one_run(
            name: str, args: list[str] = args, seeds: dict = seeds
        ) -> tuple[float, int]:
            cachedir = work / "cache-under-test"
            shutil.rmtree(cachedir, ignore_errors=True)
            seed = seeds[name]
            if seed is not None:
                shutil.copytree(seed, cachedir)
            return run_pytest(project, cachedir, [*CONFIGS[name], *args])

        results[workload] = time_configs(
            f"{size} tests, {workload}", configs, repeat, one_run
        )
        save()


def bench_many_nodeids(count: int, repeat: int, work: Path) -> dict:
    """A --nf run of one small file with ``count`` node ids already stored."""
    project = work / "nodeids-project"
    suites.generate_small_project(project)
    seed = work / "nodeids-seed"
    suites.write_nodeids_cache(seed, project, count)

    def one_run(name: str) -> tuple[float, int]:
        cachedir = work / "cache-under-test"
        shutil.rmtree(cachedir, ignore_errors=True)
        if name != "nocache":
            shutil.copytree(seed, cachedir)
        args = ["test_small.py"] if name == "nocache" else ["--nf", "test_small.py"]
        return run_pytest(project, cachedir, [*CONFIGS[name], *args])

    return time_configs(
        f"{count} stored node ids, --nf", list(CONFIGS), repeat, one_run
    )


def compile_package() -> None:
    """Byte-compile the plugin, as ``pip install`` does for a regular install.

    An editable install under ``PYTHONDONTWRITEBYTECODE`` would otherwise
    compile every module from source in every run.
    """
    import compileall

    import pytest_crosscache

    compileall.compile_dir(Path(pytest_crosscache.__file__).parent, quiet=1)


def bench_import(repeat: int) -> dict[str, float]:
    """Milliseconds that importing the plugin adds once pytest is imported."""
    code = (
        "import time, pytest, _pytest.cacheprovider, _pytest.stepwise\n"
        "t = time.perf_counter()\n"
        # The plugin module and what it registers at start-up.
        "import pytest_crosscache.plugin, pytest_crosscache.backends.redis_hooks\n"
        "print((time.perf_counter() - t) * 1000)\n"
    )
    values = [
        float(subprocess.check_output([sys.executable, "-c", code]).decode())
        for _ in range(max(repeat, 11))
    ]
    result = {"median_ms": statistics.median(values), "min_ms": min(values)}
    print(f"  import: {result['median_ms']:.1f} ms (min {result['min_ms']:.1f})")
    return result


def ratio(results: dict, workload: str, a: str, b: str) -> float | None:
    try:
        return results[workload][a]["median"] / results[workload][b]["median"]
    except KeyError:
        return None


def report(results: dict) -> str:
    lines = [
        f"Measured {results['date']} on {results['machine']}, Python "
        f"{results['python']}, pytest {results['pytest']}, {results['repeat']} rounds.",
        "",
        f"{'workload':<28} {'crosscache':>11} {'builtin':>9} {'nocache':>9}"
        f" {'x builtin':>10} {'x nocache':>10} {'paired':>8}",
    ]
    for size, per_workload in results["suites"].items():
        for workload, timings in per_workload.items():
            cells = [
                f"{timings[c]['median']:.3f}s" if c in timings else "-" for c in CONFIGS
            ]
            vs_builtin = ratio(per_workload, workload, "crosscache", "builtin")
            vs_none = ratio(per_workload, workload, "crosscache", "nocache")
            rounds = next(iter(timings.values())).get("rounds", results["repeat"])
            label = f"{size} tests, {workload}"
            if rounds != results["repeat"]:
                label += f" ({rounds} rounds)"
            paired = paired_ratio(timings, "crosscache", "builtin")
            lines.append(
                f"{label:<28} {cells[0]:>11} {cells[1]:>9}"
                f" {cells[2]:>9} {fmt(vs_builtin):>10} {fmt(vs_none):>10}"
                f" {fmt(paired):>8}"
            )
    if "nodeids" in results:
        timings = results["nodeids"]["timings"]
        ours, builtin, floor = (timings[c]["median"] for c in CONFIGS)
        over = (ours - floor) / (builtin - floor) if builtin > floor else float("nan")
        lines.append(
            f"{results['nodeids']['count']} ids stored, --nf: crosscache {ours:.3f}s, "
            f"builtin {builtin:.3f}s, nocache {floor:.3f}s; cost above nocache "
            f"{over:.2f}x builtin's; peak RSS "
            f"{timings['crosscache']['peak_rss_kib']} vs "
            f"{timings['builtin']['peak_rss_kib']} KiB"
        )
    if "api" in results:
        for op, timings in results["api"].items():
            ours, builtin = timings["crosscache"], timings["builtin"]
            lines.append(
                f"cache.{op}: crosscache {ours * 1e6:.1f} us, "
                f"builtin {builtin * 1e6:.1f} us, {ours / builtin:.2f}x"
            )
    if "import" in results:
        lines.append(f"import of the plugin: {results['import']['median_ms']:.1f} ms")
    return "\n".join(lines)


def paired_ratio(timings: dict, a: str, b: str) -> float | None:
    """The median over rounds of a's time over b's in the same round.

    Runs of one round are minutes apart at most, so a machine that gets
    faster or slower over an hour cancels out of each round's ratio; the
    ratio of medians does not see rounds.
    """
    try:
        pairs = zip(timings[a]["samples"], timings[b]["samples"], strict=True)
    except KeyError:
        return None
    return statistics.median(x / y for x, y in pairs)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    sizes = sorted(int(s) for s in results["suites"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in CONFIGS:
        points = [
            (s, results["suites"][str(s)]["full"][name]["median"])
            for s in sizes
            if name in results["suites"][str(s)].get("full", {})
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel("tests in the suite")
    ax.set_ylabel("median wall time of a full run (s)")
    ax.set_title("pytest run time by cache provider")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help="for the suites: which configurations to time (default: all three)",
    )
    parser.add_argument("--nodeids", type=int, default=1_000_000)
    parser.add_argument(
        "--skip", default="", help="comma list of: suites,nodeids,api,import"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 rounds")
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="RESULTS_JSON",
        help="measure nothing: report and plot the results of earlier runs together",
    )
    ns = parser.parse_args(argv)
    if ns.quick:
        ns.sizes, ns.repeat, ns.nodeids = "1000,3000", 3, 20_000
    skip = set(filter(None, ns.skip.split(",")))
    sizes = [int(s) for s in ns.sizes.split(",") if s]
    workloads = [w for w in ns.workloads.split(",") if w]
    configs = [c for c in ns.configs.split(",") if c]
    if unknown := set(configs) - set(CONFIGS):
        parser.error(
            f"unknown configuration(s) {sorted(unknown)}; know {list(CONFIGS)}"
        )
    ns.out.mkdir(parents=True, exist_ok=True)
    if ns.combine:
        return write_outputs(combine(ns.combine), ns.out)
    import pytest

    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "pytest": pytest.__version__,
        "repeat": ns.repeat,
        "suites": {},
    }

    def save() -> None:
        (ns.out / "results.json").write_text(json.dumps(results, indent=2))

    compile_package()
    with tempfile.TemporaryDirectory(prefix="crosscache-bench-") as tmp:
        work = Path(tmp)
        if "suites" not in skip:
            for size in sizes:
                # The biggest suites take minutes per run: there, only the
                # workloads that need no cache state of their own.
                chosen = (
                    workloads
                    if size <= 50_000
                    else [w for w in workloads if w in ("full", "lf", "cache-show")]
                )
                bench_suite(
                    size,
                    chosen,
                    ns.repeat,
                    work,
                    results["suites"].setdefault(str(size), {}),
                    save,
                    configs,
                )
        if "nodeids" not in skip:
            results["nodeids"] = {
                "count": ns.nodeids,
                "timings": bench_many_nodeids(ns.nodeids, ns.repeat, work),
            }
            save()
        if "api" not in skip:
            results["api"] = api.bench_api(work, ns.repeat)
            save()
        if "import" not in skip:
            results["import"] = bench_import(ns.repeat)
    save()
    return write_outputs(results, ns.out)


def write_outputs(results: dict, out: Path) -> int:
    text = report(results)
    (out / "results.txt").write_text(text + "\n")
    print()
    print(text)
    if any("full" in per_workload for per_workload in results["suites"].values()):
        plot(results, out / "full-run.png")
    return 0


def combine(paths: Sequence[Path]) -> dict:
    """One result from several runs' ``results.json``: later files win per entry."""
    combined: dict = {"suites": {}}
    for path in paths:
        results = json.loads(path.read_text())
        for size, per_workload in results.pop("suites", {}).items():
            combined["suites"].setdefault(size, {}).update(per_workload)
        combined.update(results)
    return combined


if __name__ == "__main__":
    sys.exit(main())
