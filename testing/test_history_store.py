"""The history store on a real directory backend: record, read, window, forget, merge."""

from __future__ import annotations

import json
import math

import pytest

from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.history import _bucket
from pytest_crosscache.history import store
from pytest_crosscache.history.model import History
from pytest_crosscache.history.model import Run
from pytest_crosscache.history.store import load_history_from_backend
from pytest_crosscache.history.store import record_run
from pytest_crosscache.history.store import recorded_durations_from_backend


def make_run(number: int, *, revision: str | None = "a" * 40, ci: bool = False) -> Run:
    return Run(
        id=f"run{number:04d}",
        started=1_000_000.0 + number,
        revision=revision,
        ci=ci,
        duration=1.0,
        tests=1,
        failed=0,
    )


@pytest.fixture
def backend(tmp_path) -> DirectoryBackend:
    return DirectoryBackend(tmp_path / "cache")


@pytest.mark.parametrize("seconds", [0.0, 1e-7, 1e-6, 2.5e-5, 0.2, 1.0, 3.7, 900.0])
def test_durations_survive_encoding_within_a_percent(seconds: float) -> None:
    code = _bucket.encode_duration(seconds)
    assert len(code) == 2
    back = _bucket.decode_duration(code)
    if seconds <= 1e-6:
        assert back == 0.0
    else:
        assert math.isclose(back, seconds, rel_tol=0.004)


def test_codes_sort_as_durations() -> None:
    values = [0.0, 1e-5, 1e-4, 0.003, 0.2, 0.21, 5.0, 60.0]
    codes = [_bucket.encode_duration(v) for v in values]
    assert codes == sorted(codes)


def test_recorded_outcomes_and_durations_read_back(backend) -> None:
    record_run(
        backend,
        make_run(1),
        {"t/test_a.py::test_one": ("P", 0.25), "t/test_a.py::test_two": ("F", 1.5)},
    )
    record_run(
        backend,
        make_run(2),
        {"t/test_a.py::test_one": ("R", 0.3), "t/test_b.py": ("E", 0.01)},
    )
    history = load_history_from_backend(backend)
    one = history.tests["t/test_a.py::test_one"]
    assert one.outcomes == "PR"
    assert one.run_ids == ("run0001", "run0002")
    assert [round(d, 2) for d in one.durations] == [0.25, 0.3]
    assert history.tests["t/test_a.py::test_two"].outcomes == "F"
    assert history.tests["t/test_b.py"].outcomes == "E"
    assert set(history.runs) == {"run0001", "run0002"}
    assert history.runs["run0002"] == make_run(2)
    assert recorded_durations_from_backend(backend)["t/test_a.py::test_one"] == (
        pytest.approx(0.275, rel=0.01)
    )


def test_only_the_asked_tests_are_read(backend) -> None:
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0), "b.py::y": ("F", 1.0)})
    history = load_history_from_backend(backend, ["b.py::y", "c.py::unknown"])
    assert set(history.tests) == {"b.py::y"}


def test_window_keeps_the_newest_runs_and_drops_old_columns(backend) -> None:
    for number in range(25):
        ran = {"a.py::always": ("P", 0.1)}
        if number == 3:
            ran["a.py::once"] = ("F", 0.1)
        record_run(backend, make_run(number), ran, window=5)
    history = load_history_from_backend(backend)
    assert history.tests["a.py::always"].run_ids == tuple(
        f"run{n:04d}" for n in range(20, 25)
    )
    # "once" keeps its only outcome until the bucket holds 3 windows of columns.
    assert "a.py::once" not in history.tests
    stored = json.loads(backend.read(store.tests_key(store.bucket_of("a.py"))))
    assert len(stored["runs"]) == 5


def test_a_small_run_leaves_other_tests_alone(backend) -> None:
    record_run(backend, make_run(1), {"a.py::x": ("F", 1.0), "a.py::y": ("P", 2.0)})
    record_run(backend, make_run(2), {"a.py::x": ("P", 1.0)})
    history = load_history_from_backend(backend)
    assert history.tests["a.py::x"].outcomes == "FP"
    assert history.tests["a.py::y"].outcomes == "P"
    assert history.tests["a.py::y"].run_ids == ("run0001",)


def test_whole_suite_collection_forgets_removed_tests(backend) -> None:
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0), "gone.py::y": ("P", 1.0)})
    record_run(backend, make_run(2), {"a.py::x": ("P", 1.0)}, collected={"a.py::x"})
    assert set(load_history_from_backend(backend).tests) == {"a.py::x"}
    assert set(recorded_durations_from_backend(backend)) == {"a.py::x"}


def test_failures_of_the_run_come_back_updated(backend) -> None:
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0)})
    found = record_run(backend, make_run(2), {"a.py::x": ("F", 1.0)}, want=["a.py::x"])
    assert found.tests["a.py::x"].outcomes == "PF"
    assert set(found.runs) == {"run0001", "run0002"}


def test_a_run_recorded_twice_counts_once(backend) -> None:
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0)})
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0)})
    assert load_history_from_backend(backend).tests["a.py::x"].outcomes == "P"


def test_runs_from_a_slower_clock_are_put_in_order(backend) -> None:
    record_run(backend, make_run(5), {"a.py::x": ("P", 1.0)})
    record_run(backend, make_run(2), {"a.py::x": ("F", 1.0)})
    test = load_history_from_backend(backend).tests["a.py::x"]
    assert test.outcomes == "FP"
    assert test.run_ids == ("run0002", "run0005")


def test_merge_unites_shards_by_run_id(tmp_path) -> None:
    common = DirectoryBackend(tmp_path / "common")
    record_run(common, make_run(1), {"a.py::x": ("P", 1.0), "b.py::y": ("P", 1.0)})
    shards = []
    for number in range(3):
        shard_dir = tmp_path / f"shard{number}"
        # Each shard starts from the same restored cache, then runs its part.
        import shutil

        shutil.copytree(tmp_path / "common", shard_dir)
        shard = DirectoryBackend(shard_dir)
        record_run(shard, make_run(10 + number), {f"s{number}.py::t": ("F", 0.5)})
        shards.append(shard)
    target = DirectoryBackend(tmp_path / "merged")
    assert store.merge_history(target, shards, window=5) == 4
    history = load_history_from_backend(target)
    assert history.tests["a.py::x"].outcomes == "P"
    assert {f"s{n}.py::t" for n in range(3)} <= set(history.tests)
    assert set(history.runs) == {"run0001", "run0010", "run0011", "run0012"}
    # Merging again changes nothing.
    store.merge_history(target, shards, window=5)
    assert load_history_from_backend(target) == history


def test_damaged_values_are_reported_and_rewritten(backend) -> None:
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0)})
    key = store.tests_key(store.bucket_of("a.py"))
    backend.write(key, b"{not json")
    problems: list[str] = []
    assert load_history_from_backend(backend, on_damage=problems.append).tests == {}
    assert problems == [f"{key!r} is not valid JSON"]
    record_run(backend, make_run(2), {"a.py::x": ("F", 1.0)})
    assert load_history_from_backend(backend).tests["a.py::x"].outcomes == "F"


def test_damaged_entries_are_left_out(backend) -> None:
    key = store.tests_key(store.bucket_of("a.py"))
    backend.write(
        key,
        json.dumps(
            {
                "version": 1,
                "runs": [["r", 1.0, None, False]],
                "files": {"a.py": {"good": "P--", "bad": "P", "worse": 3}},
            }
        ).encode(),
    )
    problems: list[str] = []
    history = load_history_from_backend(backend, on_damage=problems.append)
    assert set(history.tests) == {"a.py::good"}
    assert problems == [f"{key!r}: left out 2 damaged entries"]


def test_imported_durations_fill_gaps_only(backend) -> None:
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0)})
    count = store.import_durations(backend, {"a.py::x": 9.0, "a.py::new": 4.0})
    assert count == 1
    durations = recorded_durations_from_backend(backend)
    assert durations["a.py::new"] == 4.0
    assert durations["a.py::x"] == pytest.approx(1.0, rel=0.01)


def test_empty_history(backend) -> None:
    assert load_history_from_backend(backend) == History.empty()
    assert recorded_durations_from_backend(backend) == {}


def test_stored_values_merge_by_run_id(tmp_path) -> None:
    one, two = DirectoryBackend(tmp_path / "one"), DirectoryBackend(tmp_path / "two")
    record_run(one, make_run(1), {"a.py::x": ("P", 1.0)})
    for backend in (one, two):
        record_run(backend, make_run(2), {"a.py::x": ("F", 3.0)})
    record_run(two, make_run(3), {"a.py::y": ("P", 2.0)})
    target = DirectoryBackend(tmp_path / "target")
    keys = {*one.keys(), *two.keys()}
    for key in keys:
        merged = store.merge_stored(key, one.read(key), two.read(key))
        assert merged is not None
        target.write(key, merged)
    history = load_history_from_backend(target)
    assert history.tests["a.py::x"].outcomes == "PF"
    assert history.tests["a.py::y"].outcomes == "P"
    assert set(history.runs) == {"run0001", "run0002", "run0003"}
    assert set(recorded_durations_from_backend(target)) == {"a.py::x", "a.py::y"}
    assert store.merge_stored(store.RUNS_KEY, None, None) is None


def _other_bucket_file(file: str) -> str:
    return next(
        f"t{n}.py"
        for n in range(100)
        if store.bucket_of(f"t{n}.py") != store.bucket_of(file)
    )


def test_buckets_a_run_did_not_touch_keep_their_exact_bytes(backend) -> None:
    other = _other_bucket_file("a.py")
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0), f"{other}::y": ("F", 2.0)})
    index = store.bucket_of(other)
    keys = [store.tests_key(index), store.durations_key(index)]
    before = [backend.read(key) for key in keys]
    record_run(backend, make_run(2), {"a.py::x": ("F", 1.5)})
    record_run(backend, make_run(3), {"a.py::x": ("P", 1.5)}, collected=None)
    assert [backend.read(key) for key in keys] == before
    # A whole-suite collection that still holds the test reads the bucket
    # but has no reason to write it.
    record_run(
        backend,
        make_run(4),
        {"a.py::x": ("P", 1.5)},
        collected={"a.py::x", f"{other}::y"},
    )
    assert [backend.read(key) for key in keys] == before


def test_durations_of_the_earlier_layout_are_read_and_rewritten(backend) -> None:
    other = _other_bucket_file("a.py")
    record_run(backend, make_run(1), {"a.py::x": ("P", 1.0)})
    key = store.durations_key(store.bucket_of("a.py"))
    old_key = store.durations_key(store.bucket_of(other))
    # Version 1: {FILE: {NAME: SECONDS}}; imported entries and a file alone.
    backend.write(
        key, json.dumps({"a.py": {"x": 1.0, "imported": 2.5, "": 0.125}}).encode()
    )
    backend.write(old_key, json.dumps({other: {"z": 7}}).encode())
    problems: list[str] = []
    durations = recorded_durations_from_backend(backend, on_damage=problems.append)
    assert problems == []
    assert durations == {
        "a.py::x": 1.0,
        "a.py::imported": 2.5,
        "a.py": 0.125,
        f"{other}::z": 7.0,
    }
    record_run(backend, make_run(2), {"a.py::x": ("P", 3.0)})
    stored = json.loads(backend.read(key))
    assert stored["version"] == 2
    assert set(stored["ids"]) == {"a.py::x", "a.py::imported", "a.py"}
    assert recorded_durations_from_backend(backend)["a.py::imported"] == 2.5
    assert recorded_durations_from_backend(backend)["a.py"] == 0.125


@pytest.mark.parametrize(
    ("value", "problem", "kept"),
    [
        (
            {"version": 2, "ids": ["a.py::x", 3, "a.py::y"], "nanoseconds": [1, 2, 3]},
            "left out 1 damaged entries",
            {"a.py::x": 1e-9, "a.py::y": 3e-9},
        ),
        (
            {"version": 2, "ids": ["a.py::x", "a.py::y"], "nanoseconds": [-1, 2.5]},
            "left out 2 damaged entries",
            {},
        ),
        (
            {"version": 2, "ids": ["a.py::x"], "nanoseconds": [True]},
            "left out 1 damaged entries",
            {},
        ),
        (
            {"version": 2, "ids": ["a.py::x"], "nanoseconds": []},
            "is not a durations value",
            {},
        ),
        ({"version": 2, "ids": "a.py::x"}, "is not a durations value", {}),
        ([1, 2], "is not a mapping of durations", {}),
    ],
)
def test_damaged_durations_are_reported(backend, value, problem, kept) -> None:
    key = store.durations_key(0)
    backend.write(key, json.dumps(value).encode())
    problems: list[str] = []
    assert recorded_durations_from_backend(backend, on_damage=problems.append) == kept
    assert problems == [
        f"{key!r} {problem}" if problem.startswith("is") else f"{key!r}: {problem}"
    ]


def test_stored_medians_read_back_exactly(backend) -> None:
    # Whole nanoseconds hold the four significant digits exactly.
    seconds = [1.5e-6, 0.0002013, 0.25, 3.0, 12340.0, 987600.0]
    store.import_durations(
        backend, {f"a.py::t{n}": value for n, value in enumerate(seconds)}
    )
    durations = recorded_durations_from_backend(backend)
    assert [durations[f"a.py::t{n}"] for n in range(len(seconds))] == seconds


def test_durations_of_the_same_tests_are_rewritten_in_place(backend) -> None:
    tests = {"a.py::x": ("P", 1.0), "a.py::y": ("P", 2.0)}
    record_run(backend, make_run(1), tests)
    key = store.durations_key(store.bucket_of("a.py"))
    first = json.loads(backend.read(key))
    record_run(backend, make_run(2), {"a.py::x": ("P", 3.0), "a.py::y": ("P", 2.0)})
    second = json.loads(backend.read(key))
    assert second["ids"] == first["ids"] == ["a.py::x", "a.py::y"]
    assert second["nanoseconds"] == pytest.approx([2e9, 2e9], rel=0.004)
    # A test added, one not run: ids of the run first, the others kept.
    record_run(backend, make_run(3), {"a.py::new": ("P", 0.5), "a.py::y": ("P", 2.0)})
    third = json.loads(backend.read(key))
    assert third["ids"] == ["a.py::new", "a.py::y", "a.py::x"]
    assert recorded_durations_from_backend(backend) == pytest.approx(
        {"a.py::new": 0.5, "a.py::y": 2.0, "a.py::x": 2.0}, rel=0.004
    )


@pytest.mark.parametrize(
    "nanoseconds",
    [[1, "2"], [1], [1, 2, 3], [1, -2], [1.5, 2], []],
    ids=["string", "short", "long", "negative", "decimal", "empty"],
)
def test_damaged_durations_of_the_same_tests_are_reported(backend, nanoseconds) -> None:
    tests = {"a.py::x": ("P", 1.0), "a.py::y": ("P", 2.0)}
    record_run(backend, make_run(1), tests)
    key = store.durations_key(store.bucket_of("a.py"))
    value = {"version": 2, "ids": ["a.py::x", "a.py::y"], "nanoseconds": nanoseconds}
    backend.write(key, json.dumps(value, separators=(",", ":")).encode())
    problems: list[str] = []
    record_run(backend, make_run(2), tests, on_damage=problems.append)
    assert len(problems) == 1
    assert problems[0].startswith(repr(key))
    assert recorded_durations_from_backend(backend) == pytest.approx(
        {"a.py::x": 1.0, "a.py::y": 2.0}, rel=0.004
    )


def test_a_smaller_window_trims_tests_that_did_not_run(backend) -> None:
    for number in range(4):
        record_run(
            backend,
            make_run(number),
            {"a.py::x": ("P", 1.0), "a.py::y": ("F", 1.0)},
            window=4,
        )
    # A partial run with a smaller window: y did not run, yet keeps 2 runs.
    record_run(backend, make_run(9), {"a.py::x": ("P", 1.0)}, window=2)
    tests = load_history_from_backend(backend).tests
    assert tests["a.py::x"].run_ids == ("run0003", "run0009")
    assert tests["a.py::y"].run_ids == ("run0002", "run0003")
    # With the window unchanged, tests that did not run keep all theirs.
    record_run(backend, make_run(10), {"a.py::x": ("P", 1.0)}, window=2)
    assert load_history_from_backend(backend).tests["a.py::y"].outcomes == "FF"
