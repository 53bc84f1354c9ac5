"""Real third-party users of ``config.cache`` keep working under pytest-crosscache.

Each client runs for real, once under pytest-crosscache and once under
the builtin provider (``-p no:crosscache``) as a baseline:

- pytest-randomly stores its seed with ``cache.set("randomly_seed", ...)``
  and reads it back for ``--randomly-seed=last``;
- pytest-xprocess keeps its processes' state in
  ``cache.makedir(".xprocess")``;
- pytest-random-order reads ``cache/lastfailed`` for ``--ff``.

The shared conftest switches these plugins off for inner runs; the tests
here switch on the one they exercise.
"""

from __future__ import annotations

import json

import pytest

from pytest_crosscache import Cache

PROVIDERS = {"crosscache": (), "builtin": ("-p", "no:crosscache")}


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Command line arguments selecting one cache provider."""
    return PROVIDERS[request.param]


# The plugins the shared conftest keeps out of inner runs.
QUIET = ("randomly", "random_order", "hypothesispytest", "pytest_lf_skip")


def enable(monkeypatch: pytest.MonkeyPatch, plugin: str) -> None:
    """Let ``plugin`` load in inner runs, keeping the other quiet ones off."""
    kept = [f"-p no:{name}" for name in QUIET if name != plugin]
    monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(kept))


def stored(pytester: pytest.Pytester, key: str) -> object:
    path = pytester.path / ".pytest_cache" / "v" / key
    return json.loads(path.read_text("utf-8")) if path.exists() else None


class TestRandomly:
    @pytest.fixture(autouse=True)
    def _randomly(self, pytester: pytest.Pytester, monkeypatch) -> None:
        enable(monkeypatch, "randomly")
        pytester.makepyfile(
            """
            def test_one():
                pass

            def test_two():
                pass
            """
        )

    def test_last_seed_is_the_stored_one(
        self, pytester: pytest.Pytester, provider: tuple[str, ...]
    ) -> None:
        result = pytester.runpytest(
            *provider, "-p", "randomly", "--randomly-seed=12345"
        )
        result.stdout.fnmatch_lines(["Using --randomly-seed=12345"])
        result.assert_outcomes(passed=2)
        assert stored(pytester, "randomly_seed") == 12345

        result = pytester.runpytest(*provider, "-p", "randomly", "--randomly-seed=last")
        result.stdout.fnmatch_lines(["Using --randomly-seed=12345"])
        result.assert_outcomes(passed=2)
        assert stored(pytester, "randomly_seed") == 12345

    def test_last_seed_set_through_our_api(self, pytester: pytest.Pytester) -> None:
        Cache(pytester.path / ".pytest_cache").set("randomly_seed", 4242)
        result = pytester.runpytest("-p", "randomly", "--randomly-seed=last")
        result.stdout.fnmatch_lines(["Using --randomly-seed=4242"])
        result.assert_outcomes(passed=2)

    def test_new_seed_is_readable_through_our_api(
        self, pytester: pytest.Pytester
    ) -> None:
        result = pytester.runpytest("-p", "randomly")
        result.assert_outcomes(passed=2)
        seed = Cache(pytester.path / ".pytest_cache").get("randomly_seed", None)
        assert isinstance(seed, int)
        result.stdout.fnmatch_lines([f"Using --randomly-seed={seed}"])

    def test_last_seed_with_xdist_workers(self, pytester: pytest.Pytester) -> None:
        pytester.runpytest("-p", "randomly", "--randomly-seed=12345")
        result = pytester.runpytest_subprocess(
            "-p", "randomly", "--randomly-seed=last", "-n", "2"
        )
        result.stdout.fnmatch_lines(["Using --randomly-seed=12345"])
        result.assert_outcomes(passed=2)
        assert stored(pytester, "randomly_seed") == 12345


XPROCESS_TEST = """
    import sys

    from xprocess import ProcessStarter

    class Starter(ProcessStarter):
        pattern = "ready"
        args = [sys.executable, "-u", "-c", "print('ready'); import time; time.sleep(60)"]
        timeout = 60
        terminate_on_interrupt = True

    def test_starts_a_process(xprocess):
        xprocess.ensure("sleeper", Starter)
        info = xprocess.getinfo("sleeper")
        try:
            assert info.isrunning()
        finally:
            info.terminate()
        assert not info.isrunning()
"""


class TestXprocess:
    def test_fixture_keeps_its_processes_in_the_cache(
        self, pytester: pytest.Pytester, provider: tuple[str, ...]
    ) -> None:
        pytester.makepyfile(XPROCESS_TEST)
        result = pytester.runpytest_subprocess(*provider)
        result.assert_outcomes(passed=1)
        control = pytester.path / ".pytest_cache" / "d" / ".xprocess" / "sleeper"
        assert "ready" in control.joinpath("xprocess.log").read_text()

        result = pytester.runpytest_subprocess(*provider, "--xshow")
        assert result.ret == 0
        result.stdout.fnmatch_lines([f"* sleeper DEAD {control / 'xprocess.log'}"])

    def test_xshow_makes_its_directory(
        self, pytester: pytest.Pytester, provider: tuple[str, ...]
    ) -> None:
        result = pytester.runpytest_subprocess(*provider, "--xshow")
        assert result.ret == 0
        assert (pytester.path / ".pytest_cache" / "d" / ".xprocess").is_dir()

    def test_directory_follows_cache_dir(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(XPROCESS_TEST)
        result = pytester.runpytest_subprocess("-o", "cache_dir=elsewhere")
        result.assert_outcomes(passed=1)
        assert (pytester.path / "elsewhere" / "d" / ".xprocess" / "sleeper").is_dir()
        assert not (pytester.path / ".pytest_cache").exists()


RANDOM_ORDER_PROJECT = {
    "test_first": """
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_many(n):
            assert n != 4
    """,
    "test_second": """
        def test_a():
            pass

        def test_b():
            assert False

        def test_c():
            pass
    """,
}
RANDOM_ORDER_FAILURES = {"test_first.py::test_many[4]", "test_second.py::test_b"}


class TestRandomOrder:
    @pytest.fixture(autouse=True)
    def _random_order(self, pytester: pytest.Pytester, monkeypatch) -> None:
        enable(monkeypatch, "random_order")
        pytester.makepyfile(**RANDOM_ORDER_PROJECT)

    @staticmethod
    def ran(reprec: pytest.HookRecorder) -> list[str]:
        return [
            report.nodeid
            for report in reprec.getreports("pytest_runtest_logreport")
            if report.when == "call"
        ]

    @pytest.mark.parametrize("seed", ["1", "2", "3"])
    def test_failed_first_puts_last_failures_first(
        self, pytester: pytest.Pytester, provider: tuple[str, ...], seed: str
    ) -> None:
        args = (*provider, "-p", "random_order", "--random-order")
        first = pytester.inline_run(*args, f"--random-order-seed={seed}")
        first.assertoutcome(passed=7, failed=2)
        assert set(stored(pytester, "cache/lastfailed")) == RANDOM_ORDER_FAILURES

        again = pytester.inline_run(*args, "--ff", f"--random-order-seed={seed}")
        again.assertoutcome(passed=7, failed=2)
        ran = self.ran(again)
        assert len(ran) == 9
        assert set(ran[:2]) == RANDOM_ORDER_FAILURES, ran

    def test_header_and_selection(
        self, pytester: pytest.Pytester, provider: tuple[str, ...]
    ) -> None:
        args = (*provider, "-p", "random_order", "--random-order-seed=7")
        pytester.runpytest(*args)
        result = pytester.runpytest(*args, "--ff", "--random-order-bucket=global")
        result.stdout.fnmatch_lines(
            [
                "Using --random-order-bucket=global",
                "Using --random-order-seed=7",
                "run-last-failure: rerun previous 2 failures first",
            ]
        )
        result.assert_outcomes(passed=7, failed=2)

    def test_failed_first_with_xdist_workers(self, pytester: pytest.Pytester) -> None:
        args = ("-p", "random_order", "--random-order", "--random-order-seed=5")
        pytester.runpytest(*args)
        result = pytester.runpytest_subprocess(*args, "--ff", "-n", "2")
        # Workers that ordered their items differently would make xdist
        # abort; all of them must have read the same failures.
        result.assert_outcomes(passed=7, failed=2)
        assert "Different tests were collected" not in result.stdout.str()
