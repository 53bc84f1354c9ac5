"""``crosscache plan --shards N``: the split the recorded durations allow."""

from __future__ import annotations

import json

import pytest

from durations import seed
from pytest_crosscache.cli import main


@pytest.fixture
def project(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    monkeypatch.chdir(pytester.path)
    pytester.makeini("[pytest]\n")
    return pytester


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        status = main(list(args))
    except SystemExit as exc:
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


DURATIONS = {
    "tests/test_big.py::test_huge": 40.0,
    "tests/test_big.py::test_large": 20.0,
    **{f"tests/test_small.py::test_{i}": 2.0 for i in range(30)},
}


def test_plan_shows_each_shard_next_to_the_lower_bound(project, capsys) -> None:
    seed(project.path, DURATIONS)
    status, out, _ = run(capsys, "plan", "--shards", "3", "--top", "2")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "3 shards for 32 tests with recorded durations (120 s in all)"
    assert lines[1].split() == ["shard", "tests", "expected"]
    loads = [float(line.split()[2]) for line in lines[2:5]]
    assert sorted(loads) == [40.0, 40.0, 40.0]
    assert (
        lines[5] == "slowest shard 40.0 s; lower bound 40.0 s (the longest test): 1.00x"
    )
    assert lines[6:9] == [
        "longest tests (share of a shard's time):",
        "     40.0 s  100%  tests/test_big.py::test_huge",
        "     20.0 s   50%  tests/test_big.py::test_large",
    ]
    assert len(lines) == 9


def test_plan_says_when_more_shards_cannot_help(project, capsys) -> None:
    seed(project.path, DURATIONS)
    status, out, _ = run(capsys, "plan", "--shards", "4")
    assert status == 0
    assert "lower bound 40.0 s (the longest test)" in out
    assert out.splitlines()[-1] == (
        "more than 3 shards cannot help: the longest test takes 40.0 s; "
        "split it to go faster"
    )


def test_plan_as_json(project, capsys) -> None:
    seed(project.path, DURATIONS)
    status, out, _ = run(capsys, "plan", "--shards=2", "--json", "--top=1")
    assert status == 0
    data = json.loads(out)
    assert data["shards"] == 2
    assert data["tests"] == 32
    assert data["total"] == 120.0
    assert data["lower_bound"] == 60.0
    assert data["makespan"] == 60.0
    assert [entry["expected"] for entry in data["loads"]] == [60.0, 60.0]
    assert sum(entry["tests"] for entry in data["loads"]) == 32
    assert data["longest"] == [
        {"nodeid": "tests/test_big.py::test_huge", "seconds": 40.0}
    ]
    assert data["useful_shards"] == 3


def test_plan_without_durations_says_so(project, capsys) -> None:
    status, _, err = run(capsys, "plan", "--shards", "2")
    assert status == 1
    assert "no recorded durations in " in err
    assert "run the suite with pytest-crosscache once first" in err


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_plan_refuses_a_bad_shard_count(project, capsys, value: str) -> None:
    status, _, err = run(capsys, "plan", f"--shards={value}")
    assert status == 2
    assert f"invalid count '{value}'" in err
