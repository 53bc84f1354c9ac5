"""Record a few CI-like runs of example/project, then make its HTML report.

Usage, with pytest-crosscache installed in the running interpreter::

    python example/report_demo.py                       # writes report.html here
    python example/report_demo.py --html out.html --screenshot doc/report.png

A copy of the project (in a temporary directory) is run nine times, as CI
would run three commits three times each (``CI=true`` and ``GITHUB_SHA``
set), with two files added to give the history something to show: a test
that fails now and then whatever the code, and a few slow tests, one of
them slower with every commit.  The second commit fixes the calculator's
floor-division bug; the third breaks ``subtract``.  With
``--screenshot``, headless Chromium saves a PNG of the page (this is how
the documentation's picture is made).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

FLAKY = """\
from pathlib import Path

COUNTER = Path(__file__).with_name("attempts.txt")


def test_upload_retries():
    # Stands for a test that races a timeout: it fails every third run.
    attempt = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(attempt))
    assert attempt % 3 != 2, "upload timed out"


def test_upload():
    assert True
"""

SLOW = """\
import os
import time

import pytest

COMMIT = int(os.environ.get("DEMO_COMMIT", "0"))


@pytest.mark.parametrize("rows", [1000, 5000])
def test_export(rows):
    time.sleep(rows / 20000)


def test_import_everything():
    # Gets slower with every commit.
    time.sleep(0.15 + 0.2 * COMMIT)


def test_report_roundtrip():
    time.sleep(0.6)
"""

#: (commit, what changes before its runs)
COMMITS = [
    ("3f9c1e2a7b4d8e6f0a1b2c3d4e5f60718293a4b5", None),
    ("8d2e4f6a1c3b5d7e9f0a2b4c6d8e0f1a3b5c7d9e", ("a // b", "a / b")),
    ("c71a9e3f5b2d4c6e8a0b1d3f5a7c9e1b3d5f7a9c", ("return a - b", "return abs(a - b)")),
]
RUNS_PER_COMMIT = 3


def record_runs(project: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "GITHUB_")) and key != "CI"
    }
    for number, (sha, change) in enumerate(COMMITS):
        if change is not None:
            calc = project / "calc.py"
            calc.write_text(calc.read_text().replace(*change, 1))
        for _ in range(RUNS_PER_COMMIT):
            run_env = {
                **env,
                "CI": "true",
                "GITHUB_SHA": sha,
                "DEMO_COMMIT": str(number),
            }
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"],
                cwd=project,
                env=run_env,
                capture_output=True,
                text=True,
            )
            summary = (
                done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            )
            print(f"  commit {sha[:7]}: {summary}")


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise SystemExit("no chromium on PATH: cannot take the screenshot")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-color-profile=srgb",
                "--force-prefers-reduced-motion",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png.resolve()}",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=Path("report.html"))
    parser.add_argument("--screenshot", type=Path, metavar="PNG")
    parser.add_argument("--size", default="1200x1830", metavar="WxH")
    parser.add_argument("--top", default="50", metavar="N", help="rows per section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(
            HERE / "project",
            project,
            ignore=shutil.ignore_patterns(".pytest_cache", "__pycache__"),
        )
        (project / "test_upload.py").write_text(FLAKY)
        (project / "test_slow.py").write_text(SLOW)
        print(f"recording {len(COMMITS) * RUNS_PER_COMMIT} runs of {project}")
        record_runs(project)
        html = args.html.resolve()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_crosscache",
                "report",
                "--html",
                str(html),
                "--shards",
                "2",
                "--top",
                args.top,
                "--title",
                "Test history of example/project",
            ],
            cwd=project,
            check=True,
        )
    if args.screenshot:
        width, height = (int(part) for part in args.size.split("x"))
        screenshot(html, args.screenshot, width, height)
        print(f"wrote {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
