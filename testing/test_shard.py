"""``--shard K/N``: every test runs in exactly one shard of a pipeline.

The shards of one pipeline run one after another here, in several orders,
while a full run records new durations in between, as concurrent pipelines
do on a shared Redis; with the directory backend, each shard gets its own
copy of one restored cache directory, as CI jobs do.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from durations import seed
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.scheduling.shard import CI_RUN_VARIABLES
from pytest_crosscache.scheduling.shard import PLANS_PREFIX

# Each test that runs appends its node id (and the xdist worker) to $RAN_LOG.
RECORDER = """
import os
import pytest

@pytest.fixture(autouse=True)
def _ran(request):
    with open(os.environ["RAN_LOG"], "a") as f:
        f.write(request.node.nodeid + "\\n")
"""

FILES = 4
TESTS_PER_FILE = 6
ALL = [f"test_f{f}.py::test_{t}" for f in range(FILES) for t in range(TESTS_PER_FILE)]


def durations(flip: bool = False) -> dict[str, float]:
    """Spread-out durations; ``flip`` reverses them, which changes any fresh plan."""
    values = [0.1 * (1 + (i * 7) % 23) for i in range(len(ALL))]
    if flip:
        values.reverse()
    return dict(zip(ALL, values, strict=True))


@pytest.fixture
def suite(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    for name in CI_RUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(RECORDER)
    for f in range(FILES):
        pytester.makepyfile(
            **{
                f"test_f{f}": "\n".join(
                    f"def test_{t}(): pass" for t in range(TESTS_PER_FILE)
                )
            }
        )
    return pytester


class Runs:
    """Runs of one project, each logging the tests it ran."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        self.count = 0

    def run(
        self, *args: str, subprocess: bool = False
    ) -> tuple[list[str], pytest.RunResult]:
        self.count += 1
        log = self.pytester.path / f"ran-{self.count}.log"
        self.monkeypatch.setenv("RAN_LOG", str(log))
        if subprocess:
            result = self.pytester.runpytest_subprocess(*args)
        else:
            result = self.pytester.runpytest(*args)
        assert result.ret in (0, 5), "\n".join(result.outlines)
        ran = log.read_text().splitlines() if log.exists() else []
        return ran, result


@pytest.fixture
def runs(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Runs:
    return Runs(suite, monkeypatch)


def assert_exactly_once(ran: list[str], expected: list[str] = ALL) -> None:
    counts = Counter(ran)
    assert sorted(counts) == sorted(expected)
    assert set(counts.values()) == {1}, {n: c for n, c in counts.items() if c != 1}


@pytest.mark.parametrize("value", ["0/3", "4/3", "3", "a/b", "1/0", ""])
def test_a_bad_shard_is_a_usage_error_naming_it(suite, value: str) -> None:
    result = suite.runpytest(f"--shard={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*argument --shard: invalid shard '{value}'*"])


def test_shards_split_by_duration_and_say_what_they_run(runs) -> None:
    seed(runs.pytester.path, durations())
    every: list[str] = []
    expected = []
    for index in (1, 2, 3):
        # Pinned: each shard's run records durations of its own.
        ran, result = runs.run(f"--shard={index}/3", "--shard-key=p")
        every += ran
        line = next(line for line in result.outlines if line.startswith("shard "))
        assert line.startswith(f"shard {index}/3: {len(ran)} tests, about ")
        assert line.endswith(" s expected")
        expected.append(sum(durations()[nodeid] for nodeid in ran))
        result.assert_outcomes(passed=len(ran), deselected=len(ALL) - len(ran))
    assert_exactly_once(every)
    # LPT with these numbers: within one test's length of each other.
    assert max(expected) - min(expected) <= max(durations().values())


def test_with_no_history_shards_split_by_count(runs) -> None:
    every: list[str] = []
    for index in (1, 2, 3):
        ran, result = runs.run(f"--shard={index}/3", "--shard-key=p")
        every += ran
        assert len(ran) == len(ALL) // 3
        # Later shards may find what earlier ones recorded: the plan stays.
        first = "(no recorded durations yet: parts balanced by count)"
        result.stdout.fnmatch_lines(
            [f"shard {index}/3: 8 tests{' ' + first if index == 1 else '*'}"]
        )
    assert_exactly_once(every)


@pytest.mark.parametrize("order", [(3, 1, 2), (2, 3, 1)])
def test_shards_on_a_shared_redis_run_every_test_once_while_durations_change(
    runs, redis_server, redis_namespace, monkeypatch, order
) -> None:
    from pytest_crosscache.backends.redis import RedisBackend

    path = runs.pytester.path
    path.joinpath("pytest.ini").write_text(
        f"[pytest]\ncache_backend = {redis_server.url}\ncache_namespace = {redis_namespace}\n"
    )
    backend = RedisBackend.from_url(
        redis_server.url, namespace=redis_namespace, cachedir=path / ".other"
    )
    seed(backend, durations())
    monkeypatch.setenv("GITHUB_RUN_ID", "1001")
    every: list[str] = []
    plans = []
    for step, index in enumerate(order):
        ran, result = runs.run(f"--shard={index}/3", "-v")
        every += ran
        plans.append(next(x for x in result.outlines if x.startswith("shard plan:")))
        if step == 0:
            # Another pipeline's full run records new durations meanwhile.
            monkeypatch.delenv("GITHUB_RUN_ID")
            full, _ = runs.run()
            assert_exactly_once(full)
            seed(backend, durations(flip=True))
            monkeypatch.setenv("GITHUB_RUN_ID", "1001")
    assert_exactly_once(every)
    assert len(set(plans)) == 1
    assert "pinned by GITHUB_RUN_ID=1001" in plans[0]
    # The pinning mattered: planned afresh now, shard 1 would run other tests.
    first, _ = runs.run("--shard=1/3", "--shard-key=another-pipeline")
    pinned, _ = runs.run("--shard=1/3")
    assert sorted(first) != sorted(pinned)


@pytest.mark.parametrize("order", [(1, 2, 3), (3, 2, 1)])
def test_shards_on_copies_of_one_restored_cache_dir_run_every_test_once(
    runs, monkeypatch, order
) -> None:
    path = runs.pytester.path
    seed(path, durations())
    monkeypatch.setenv("CI_PIPELINE_ID", "77")
    every: list[str] = []
    for index in order:
        copy = path / f"restored-{index}"
        shutil.copytree(path / ".pytest_cache", copy)
        ran, _ = runs.run(f"--shard={index}/3", "-o", f"cache_dir={copy}")
        every += ran
        # The job records its own durations into its copy afterwards.
        seed(copy, {nodeid: 9.0 for nodeid in ran})
    assert_exactly_once(every)


def test_xdist_workers_inside_each_shard(runs, monkeypatch) -> None:
    seed(runs.pytester.path, durations())
    monkeypatch.setenv("BUILDKITE_BUILD_ID", "b-5")
    every: list[str] = []
    for index in (2, 1, 3):
        ran, result = runs.run(f"--shard={index}/3", "-n", "2", subprocess=True)
        every += ran
        result.stdout.fnmatch_lines(
            [f"shard {index}/3: {len(ran)} tests, about * s expected"]
        )
    assert_exactly_once(every)
    plans = list(
        DirectoryBackend(runs.pytester.path / ".pytest_cache").keys(f"{PLANS_PREFIX}/*")
    )
    assert len(plans) == 1


def test_tests_the_plan_does_not_know_go_to_one_shard_by_hash(
    runs, monkeypatch
) -> None:
    seed(runs.pytester.path, durations())
    monkeypatch.setenv("GITHUB_RUN_ID", "9")
    runs.run("--shard=1/3")  # stores the plan, before the new tests exist
    new = [f"test_new.py::test_{i}" for i in range(12)]
    runs.pytester.makepyfile(
        test_new="\n".join(f"def test_{i}(): pass" for i in range(12))
    )
    every: list[str] = []
    shards_of_new = set()
    for index in (1, 2, 3):
        ran, _ = runs.run(f"--shard={index}/3")
        every += ran
        if any(nodeid in new for nodeid in ran):
            shards_of_new.add(index)
    assert_exactly_once(every, ALL + new)
    assert len(shards_of_new) > 1


def test_the_pipeline_identity_and_shard_key_pin_the_plan(runs, monkeypatch) -> None:
    _, result = runs.run("--shard=1/2", "-v")
    result.stdout.fnmatch_lines(
        ["shard plan: not pinned (no --shard-key and no CI run id)*"]
    )
    monkeypatch.setenv("CI_PIPELINE_ID", "31")
    _, result = runs.run("--shard=1/2", "-v")
    result.stdout.fnmatch_lines(
        ["shard plan: pinned by CI_PIPELINE_ID=31 under 'crosscache/shard-plans/*'"]
    )
    _, result = runs.run("--shard=1/2", "-v", "--shard-key=mine")
    result.stdout.fnmatch_lines(["shard plan: pinned by key=mine under *"])
    # Quiet runs do not print the line.
    _, result = runs.run("--shard=1/2", "-q")
    assert not [line for line in result.outlines if line.startswith("shard ")]


def plan_path(result: pytest.RunResult, root: Path) -> Path:
    line = next(
        line for line in result.outlines if line.startswith("shard plan: pinned")
    )
    key = line.split("under ")[1].strip("'")
    return root / ".pytest_cache" / "v" / key


def test_a_damaged_plan_is_replaced_with_a_warning(runs) -> None:
    seed(runs.pytester.path, durations())
    _, result = runs.run("--shard=1/2", "-v", "--shard-key=k")
    stored = plan_path(result, runs.pytester.path)
    stored.write_text(json.dumps({"version": 1, "shards": 2, "tests": "nope"}))
    every, result = runs.run("--shard=1/2", "-v", "--shard-key=k")
    result.stdout.fnmatch_lines(
        [
            "*PytestCacheWarning: ignoring the shard plan 'crosscache/shard-plans/*': tests must be 2 lists of node ids; planning anew*"
        ]
    )
    assert json.loads(stored.read_text())["version"] == 1
    ran, _ = runs.run("--shard=2/2", "--shard-key=k")
    assert_exactly_once(every + ran)


def test_plans_older_than_a_week_are_removed(runs) -> None:
    root = runs.pytester.path
    _, result = runs.run("--shard=1/2", "-v", "--shard-key=old")
    old = plan_path(result, root)
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    _, result = runs.run("--shard=1/2", "-v", "--shard-key=new")
    assert not old.exists()
    assert plan_path(result, root).exists()
