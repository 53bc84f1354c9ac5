"""Generated test suites for bench/run.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

TESTS_PER_FILE = 100
FILES_PER_DIR = 50
#: One file in this many holds one failing test: a small share, spread out.
FAILING_FILE_EVERY = 50
#: The case that fails in such a file.
FAILING_CASE = 7


def _modules(size: int) -> Iterator[tuple[str, int]]:
    """(path, failing case or -1) of each test file of a suite of ``size`` tests."""
    for index in range(max(1, size // TESTS_PER_FILE)):
        path = f"area{index // FILES_PER_DIR:03d}/test_mod{index:05d}.py"
        yield path, FAILING_CASE if index % FAILING_FILE_EVERY == 0 else -1


def generate_suite(project: Path, size: int) -> None:
    """``size`` tests: files of one parametrized test, in directories of 50 files."""
    if project.exists():
        return
    project.mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    for module, failing in _modules(size):
        path = project / module
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            "import pytest\n\n\n"
            f"@pytest.mark.parametrize('n', range({TESTS_PER_FILE}))\n"
            "def test_value(n):\n"
            f"    assert n != {failing}\n"
        )


def suite_ids(size: int) -> tuple[list[str], list[str]]:
    """The node ids of :func:`generate_suite`'s tests: (all, failing)."""
    ids: list[str] = []
    failing: list[str] = []
    for module, case in _modules(size):
        ids.extend(f"{module}::test_value[{n}]" for n in range(TESTS_PER_FILE))
        if case >= 0:
            failing.append(f"{module}::test_value[{case}]")
    return ids, failing


def write_full_run_cache(cachedir: Path, size: int) -> None:
    """The records a full run of :func:`generate_suite` leaves, without running it.

    Byte for byte what pytest's provider writes (the plugin writes the same
    bytes); saves the preparing runs of the biggest suites, minutes each.
    """
    ids, failing = suite_ids(size)
    records = {
        "cache/nodeids": sorted(ids),
        "cache/lastfailed": dict.fromkeys(failing, True),
    }
    for key, value in records.items():
        path = cachedir / "v" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
        path.write_text(text, "utf-8")


def generate_small_project(project: Path) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_small.py").write_text(
        "import pytest\n\n\n"
        "@pytest.mark.parametrize('n', range(10))\n"
        "def test_small(n):\n"
        "    pass\n"
    )


def write_nodeids_cache(cachedir: Path, project: Path, count: int) -> None:
    """A cache dir whose ``cache/nodeids`` holds ``count`` ids plus the project's."""
    ids = [
        f"tests/area{n // 5000:04d}/test_mod{n // 100:06d}.py::test_value[{n % 100}]"
        for n in range(count)
    ]
    ids.extend(f"test_small.py::test_small[{n}]" for n in range(10))
    path = cachedir / "v" / "cache" / "nodeids"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(sorted(ids), ensure_ascii=False, indent=2), "utf-8")
