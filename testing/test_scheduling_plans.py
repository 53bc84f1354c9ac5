"""The planners of --sf and --shard as pure functions: estimates, LPT, units, order, plans."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pytest_crosscache.scheduling.estimate import UNKNOWN_SUITE_SECONDS
from pytest_crosscache.scheduling.estimate import estimate
from pytest_crosscache.scheduling.estimate import without_group
from pytest_crosscache.scheduling.lpt import loads_of
from pytest_crosscache.scheduling.lpt import lower_bound
from pytest_crosscache.scheduling.lpt import lpt
from pytest_crosscache.scheduling.order import slowest_first
from pytest_crosscache.scheduling.plan import InvalidPlan
from pytest_crosscache.scheduling.plan import ShardPlan
from pytest_crosscache.scheduling.plan import forecast
from pytest_crosscache.scheduling.plan import stable_shard
from pytest_crosscache.scheduling.units import distribute
from pytest_crosscache.scheduling.units import per_test_units
from pytest_crosscache.scheduling.units import scope_of_class
from pytest_crosscache.scheduling.units import scope_of_group
from pytest_crosscache.scheduling.units import scope_units

seconds_lists = st.lists(
    st.floats(min_value=0, max_value=1000, allow_nan=False), min_size=0, max_size=60
)

# --- estimates ----------------------------------------------------------------


def test_unknown_tests_count_as_the_median_of_their_file_else_of_the_suite() -> None:
    recorded = {
        "a.py::one": 1.0,
        "a.py::two": 3.0,
        "a.py::three": 10.0,
        "b.py::one": 0.5,
    }
    result = estimate(["a.py::one", "a.py::new", "c.py::new", "b.py::new"], recorded)
    # Suite median of 0.5, 1, 3, 10 is 2.
    assert result.seconds == (1.0, 3.0, 2.0, 0.5)
    assert result.known == 1


def test_with_nothing_recorded_every_test_counts_alike() -> None:
    result = estimate(["a.py::one", "b.py::two"], {})
    assert result.seconds == (UNKNOWN_SUITE_SECONDS, UNKNOWN_SUITE_SECONDS)
    assert result.known == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, True, "2"])
def test_unusable_recorded_values_count_as_unknown(bad: object) -> None:
    recorded = {"a.py::one": bad, "a.py::two": 4.0}
    result = estimate(["a.py::one"], recorded)  # type: ignore[arg-type]
    assert result.seconds == (4.0,)
    assert result.known == 0


def test_loadgroup_suffixes_are_looked_up_without_the_group() -> None:
    assert without_group("a.py::t@db") == "a.py::t"
    assert without_group("a.py::t[x@y]") == "a.py::t[x@y]"
    assert without_group("a.py::t[x@y]@db") == "a.py::t[x@y]"
    result = estimate(["a.py::t@db"], {"a.py::t": 7.0}, normalize=without_group)
    assert result.seconds == (7.0,)
    assert result.known == 1


# --- LPT ------------------------------------------------------------------------


def test_lpt_gives_the_longest_items_to_different_bins() -> None:
    weights = [1.0, 9.0, 1.0, 8.0, 7.0, 1.0]
    keys = [f"t{i}" for i in range(len(weights))]
    assignment = lpt(weights, keys, 3)
    assert len({assignment[1], assignment[3], assignment[4]}) == 3
    assert max(loads_of(weights, assignment, 3)) == 9.0


def test_lpt_breaks_ties_by_key_not_by_position() -> None:
    keys = ["b", "a", "c", "d"]
    first = lpt([1.0] * 4, keys, 2)
    # Same items listed in another order: same bins.
    again = lpt([1.0] * 4, list(reversed(keys)), 2)
    assert dict(zip(keys, first, strict=True)) == dict(
        zip(reversed(keys), again, strict=True)
    )
    assert first == [1, 0, 0, 1]


@settings(max_examples=200, deadline=None)
@given(seconds_lists, st.integers(min_value=1, max_value=8))
def test_lpt_is_within_the_list_scheduling_bound(weights, bins) -> None:
    keys = [f"t{i:03d}" for i in range(len(weights))]
    assignment = lpt(weights, keys, bins)
    assert all(0 <= b < bins for b in assignment)
    loads = loads_of(weights, assignment, bins)
    if weights:
        # Greedy in any order ends within one item of the average; LPT also
        # never beats the lower bound.
        assert max(loads) <= sum(weights) / bins + max(weights) + 1e-6
        assert max(loads) >= lower_bound(weights, bins) - 1e-6


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=7),
    st.integers(min_value=1, max_value=3),
)
def test_lpt_is_within_four_thirds_of_the_optimum(weights, bins) -> None:
    floats = [float(w) for w in weights]
    keys = [f"t{i}" for i in range(len(floats))]
    got = max(loads_of(floats, lpt(floats, keys, bins), bins))
    best = min(
        max(loads_of(floats, list(choice), bins))
        for choice in itertools.product(range(bins), repeat=len(floats))
    )
    assert got <= best * 4 / 3 + 1e-9


def test_lpt_refuses_no_bins() -> None:
    with pytest.raises(ValueError, match="0 bins"):
        lpt([1.0], ["a"], 0)


# --- shard plans ----------------------------------------------------------------


def test_a_plan_puts_every_test_in_exactly_one_shard_and_round_trips() -> None:
    nodeids = [f"t.py::test_{i}" for i in range(20)]
    plan = ShardPlan.build(nodeids, [float(i % 7) for i in range(20)], 3, created=5.0)
    planned = [nodeid for ids in plan.tests for nodeid in ids]
    assert sorted(planned) == sorted(nodeids)
    again = ShardPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan
    assert [again.shard_of(n) for n in nodeids] == [plan.shard_of(n) for n in nodeids]


def test_tests_missing_from_a_plan_go_by_a_hash_that_every_process_shares() -> None:
    plan = ShardPlan.build(["t.py::a", "t.py::b"], [1.0, 1.0], 4)
    newcomers = [f"new.py::test_{i}" for i in range(40)]
    here = [plan.shard_of(nodeid) for nodeid in newcomers]
    assert here == [stable_shard(nodeid, 4) for nodeid in newcomers]
    assert len(set(here)) == 4
    # Another interpreter (another PYTHONHASHSEED) computes the same shards.
    code = (
        "import json, sys\n"
        "from pytest_crosscache.scheduling.plan import stable_shard\n"
        "print(json.dumps([stable_shard(n, 4) for n in json.loads(sys.argv[1])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(newcomers)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert json.loads(out.stdout) == here


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping, found list"),
        ({"version": 99}, "unknown plan version 99"),
        ({"version": 1, "shards": 0}, "shards must be a positive integer"),
        (
            {"version": 1, "shards": 2, "tests": [["a"]]},
            "tests must be 2 lists of node ids",
        ),
        (
            {"version": 1, "shards": 1, "tests": [[3]]},
            "tests must be 1 lists of node ids",
        ),
        (
            {"version": 1, "shards": 1, "tests": [["a"]], "expected": ["x"]},
            "expected must be 1 numbers of seconds",
        ),
        (
            {
                "version": 1,
                "shards": 1,
                "tests": [["a"]],
                "expected": [1],
                "created": None,
            },
            "created must be a time",
        ),
    ],
)
def test_invalid_stored_plans_are_refused_with_the_reason(data, message) -> None:
    with pytest.raises(InvalidPlan, match=message):
        ShardPlan.from_json(data)


def test_forecast_reports_loads_the_bound_and_the_longest_tests() -> None:
    durations = {"a::x": 10.0, "a::y": 2.0, "b::z": 2.0, "b::w": 2.0}
    result = forecast(durations, 2, top=2)
    assert sorted(result.loads) == [6.0, 10.0]
    assert result.lower_bound == 10.0
    assert result.makespan == 10.0
    assert result.longest == (("a::x", 10.0), ("a::y", 2.0))
    assert sum(result.counts) == 4


# --- units for the xdist scheduler --------------------------------------------------


def test_long_tests_are_units_of_their_own_short_ones_go_in_runs_by_file() -> None:
    nodeids = ["a.py::s1", "a.py::s2", "a.py::long", "a.py::s3", "b.py::s1", "b.py::s2"]
    seconds = [0.01, 0.01, 5.0, 0.01, 0.01, 0.01]
    units = per_test_units(nodeids, seconds, [0] * 6, workers=2)
    # The long test stands alone; the short ones of a.py around it form one run.
    assert [unit.indices for unit in units] == [(2,), (0, 1, 3), (4, 5)]


def test_runs_of_short_tests_are_cut_at_a_share_of_a_workers_time() -> None:
    nodeids = [f"a.py::t{i}" for i in range(200)]
    units = per_test_units(nodeids, [0.1] * 200, [0] * 200, workers=2)
    # 20 s in all, 10 s per worker: units of at most 2% of that.
    assert all(unit.seconds <= 0.2 + 1e-9 for unit in units)
    assert [i for unit in units for i in unit.indices] == list(range(200))


def test_ranks_split_runs_and_come_first_in_every_workers_plan() -> None:
    nodeids = [f"a.py::t{i}" for i in range(6)]
    ranks = [0, -1, 0, -1, 0, 0]
    units = per_test_units(nodeids, [1.0] * 6, ranks, workers=2)
    for plan in distribute(units, 2):
        seen = [unit.rank for unit in plan]
        assert seen == sorted(seen)


def test_scope_units_keep_each_scope_whole() -> None:
    nodeids = [
        "a.py::C::t1",
        "a.py::t2",
        "a.py::C::t3",
        "b.py::t@db",
        "c.py::t@db",
        "c.py::u",
    ]
    seconds = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    by_class = scope_units(nodeids, seconds, [0] * 6, scope_of_class)
    assert [(u.indices, u.seconds) for u in by_class] == [
        ((0, 2), 4.0),
        ((1,), 2.0),
        ((3,), 4.0),
        ((4, 5), 11.0),
    ]
    by_group = scope_units(nodeids, seconds, [0] * 6, scope_of_group)
    assert ((3, 4), 9.0) in [(u.indices, u.seconds) for u in by_group]


@settings(max_examples=100, deadline=None)
@given(seconds_lists, st.integers(min_value=1, max_value=6))
def test_every_test_is_planned_for_exactly_one_worker(seconds, workers) -> None:
    nodeids = [f"f{i % 4}.py::t{i}" for i in range(len(seconds))]
    units = per_test_units(
        nodeids, seconds, [i % 2 for i in range(len(seconds))], workers
    )
    plans = distribute(units, workers)
    planned = sorted(i for plan in plans for unit in plan for i in unit.indices)
    assert planned == list(range(len(seconds)))


# --- sequential order ---------------------------------------------------------------


def test_modules_by_total_tests_by_their_own_time() -> None:
    paths = [("a.py",), ("a.py",), ("b.py",), ("b.py", "b.py::C"), ("b.py", "b.py::C")]
    seconds = [1.0, 2.0, 0.5, 2.0, 0.1]
    # b.py totals 2.6, a.py 3.0; in b.py class C (2.1) before the lone test.
    assert slowest_first(paths, seconds, [0] * 5) == [1, 0, 3, 4, 2]


def test_ranks_come_before_durations_and_ties_keep_the_order() -> None:
    paths = [("a.py",)] * 4
    assert slowest_first(paths, [1.0, 1.0, 5.0, 1.0], [0, 0, 0, -1]) == [3, 2, 0, 1]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 2),
            st.floats(0, 100, allow_nan=False),
            st.integers(0, 1),
        ),
        max_size=40,
    )
)
def test_scopes_stay_contiguous(tests) -> None:
    paths = [(f"m{m}.py", f"m{m}.py::C{c}") for m, c, _, _ in tests]
    seconds = [s for _, _, s, _ in tests]
    ranks = [r for _, _, _, r in tests]
    order = slowest_first(paths, seconds, ranks)
    assert sorted(order) == list(range(len(tests)))
    # Within a rank, each module and each class forms one block.
    for depth in (1, 2):
        keys = [(ranks[i], paths[i][:depth]) for i in order]
        blocks = [key for key, _ in itertools.groupby(keys)]
        assert len(blocks) == len(set(blocks))
