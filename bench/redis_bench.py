"""Time the Redis backend against the directory backend on loopback.

Usage (from the repository root, with ``pytest-crosscache[redis]`` installed
and ``redis-server`` on the PATH)::

    python bench/redis_bench.py                    # 50k tests, 1,000 failing
    python bench/redis_bench.py --size 10000 --failures 200 --repeat 5

Both configurations run pytest with this plugin on the same generated
suite; ``redis`` adds ``--cache-backend`` pointing at a throw-away
``redis-server`` on a loopback port (so it also writes the local copy).
Workloads: ``full`` (every test, the state of the previous run in place)
and ``lf`` (``--lf`` over the recorded failures).  Runs alternate, in
reversed order every other round; the table shows medians and the ratio
redis / directory (the target is at most 1.05).  Nothing here asserts a
timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from run import compile_package
from run import run_pytest

TESTS_PER_FILE = 100
FILES_PER_DIR = 50


def generate(project: Path, size: int, failures: int) -> None:
    """``size`` tests in files of 100, ``failures`` of them failing, spread evenly."""
    project.mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    files = max(1, size // TESTS_PER_FILE)
    per_file = max(1, failures // files)
    for index in range(files):
        directory = project / f"area{index // FILES_PER_DIR:03d}"
        directory.mkdir(exist_ok=True)
        # The first per_file parameters fail in every file.
        (directory / f"test_mod{index:05d}.py").write_text(
            "import pytest\n\n\n"
            f"@pytest.mark.parametrize('n', range({TESTS_PER_FILE}))\n"
            "def test_value(n):\n"
            f"    assert n >= {per_file}\n"
        )


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("redis-server did not start")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--failures", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workloads", default="full,lf")
    ns = parser.parse_args(argv)
    workloads = {"full": [], "lf": ["--lf"]}
    chosen = [w for w in ns.workloads.split(",") if w]
    compile_package()
    with tempfile.TemporaryDirectory(prefix="crosscache-redis-bench-") as tmp:
        work = Path(tmp)
        project = work / "suite"
        generate(project, ns.size, ns.failures)
        server, url = start_redis(work)
        try:
            configs = {
                "directory": ["-p", "pytest_crosscache.plugin"],
                "redis": [
                    "-p",
                    "pytest_crosscache.plugin",
                    f"--cache-backend={url}",
                    "-o",
                    "cache_namespace=bench",
                ],
            }
            caches = {name: work / f"cache-{name}" for name in configs}
            # Prime both: the timed runs start from a recorded state.
            for name, args in configs.items():
                run_pytest(project, caches[name], args)
            print(
                f"{ns.size} tests, {ns.failures} failing, {ns.repeat} rounds, "
                f"Python {sys.version.split()[0]}, {os.cpu_count()} cores"
            )
            for workload in chosen:
                samples: dict[str, list[float]] = {name: [] for name in configs}
                for round_ in range(ns.repeat):
                    order = (
                        list(configs) if round_ % 2 == 0 else list(reversed(configs))
                    )
                    for name in order:
                        elapsed, _ = run_pytest(
                            project,
                            caches[name],
                            [*configs[name], *workloads[workload]],
                        )
                        samples[name].append(elapsed)
                medians = {name: statistics.median(v) for name, v in samples.items()}
                ratio = medians["redis"] / medians["directory"]
                print(
                    f"  {workload:<5} directory {medians['directory']:.3f}s  "
                    f"redis {medians['redis']:.3f}s  ratio {ratio:.3f}x",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
