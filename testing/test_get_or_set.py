"""Computed-once values (``Cache.get_or_set``) and expiring values (``max_age``).

Sessions with real xdist workers show the promise people rely on: a slow
factory runs once for all workers and not at all in the next run; a
failing one stores nothing and fails every waiting test normally.  Ages
are made with ``os.utime`` rather than by sleeping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from pytest_crosscache import Cache
from pytest_crosscache import DirectoryBackend
from pytest_crosscache import FactoryError


def age(cachedir: Path, key: str, seconds: float) -> None:
    """Make the stored value of ``key`` look ``seconds`` old."""
    path = cachedir / "v" / key
    when = time.time() - seconds
    os.utime(path, (when, when))


class Counter:
    """A factory that counts its calls."""

    def __init__(self, value: object = "computed") -> None:
        self.calls = 0
        self.value = value

    def __call__(self) -> object:
        self.calls += 1
        return self.value


class TestMaxAge:
    def test_fresh_value_is_returned(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        cache.set("app/v", [1, 2])
        assert cache.get("app/v", None, max_age=60) == [1, 2]

    @pytest.mark.parametrize(
        ("old", "max_age", "fresh"),
        [(120, 60, False), (30, 60, True), (7200, 3600.5, False), (3000, 3600, True)],
    )
    def test_age_decides(
        self, tmp_path: Path, old: float, max_age: float, fresh: bool
    ) -> None:
        cache = Cache(tmp_path)
        cache.set("app/v", "value")
        age(tmp_path, "app/v", old)
        expected = "value" if fresh else "default"
        assert cache.get("app/v", "default", max_age=max_age) == expected
        # Without max_age, any age will do; and nothing was removed.
        assert cache.get("app/v", "default") == "value"

    def test_absent_value_gives_default(self, tmp_path: Path) -> None:
        assert Cache(tmp_path).get("app/none", 7, max_age=60) == 7

    def test_builtin_provider_values_have_an_age(
        self, pytester: pytest.Pytester
    ) -> None:
        """A value written by pytest's own provider expires the same way."""
        pytester.makepyfile(
            """
            def test_store(cache):
                cache.set("app/v", "from builtin")
            """
        )
        pytester.runpytest("-p", "no:crosscache").assert_outcomes(passed=1)
        cachedir = pytester.path / ".pytest_cache"
        cache = Cache(cachedir)
        assert cache.get("app/v", None, max_age=60) == "from builtin"
        age(cachedir, "app/v", 120)
        assert cache.get("app/v", None, max_age=60) is None

    def test_get_or_set_recomputes_stale_values(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        factory = Counter({"n": 1})
        assert cache.get_or_set("app/v", factory, max_age=60) == {"n": 1}
        assert cache.get_or_set("app/v", factory, max_age=60) == {"n": 1}
        assert factory.calls == 1
        age(tmp_path, "app/v", 61)
        factory.value = {"n": 2}
        assert cache.get_or_set("app/v", factory, max_age=60) == {"n": 2}
        assert factory.calls == 2
        # The recomputed value is fresh again.
        assert cache.get("app/v", None, max_age=60) == {"n": 2}

    def test_without_max_age_values_never_expire(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        factory = Counter()
        cache.get_or_set("app/v", factory)
        age(tmp_path, "app/v", 10 * 365 * 86400)
        assert cache.get_or_set("app/v", factory) == "computed"
        assert factory.calls == 1


class TestGetOrSetInOneProcess:
    def test_computes_once_and_stores(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        factory = Counter(["a", 1, None])
        assert cache.get_or_set("app/v", factory) == ["a", 1, None]
        assert cache.get_or_set("app/v", factory) == ["a", 1, None]
        assert factory.calls == 1
        assert Cache(tmp_path).get("app/v", None) == ["a", 1, None]

    def test_stored_falsy_values_count(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        cache.set("app/v", None)
        factory = Counter()
        assert cache.get_or_set("app/v", factory) is None
        assert factory.calls == 0

    def test_damaged_value_is_recomputed(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        cache.set("app/v", 1)
        (tmp_path / "v" / "app" / "v").write_text("{not json")
        assert cache.get_or_set("app/v", Counter(2)) == 2
        assert cache.get("app/v", None) == 2

    def test_raising_factory_stores_nothing(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)

        def broken() -> object:
            raise ValueError("database unreachable")

        with pytest.raises(ValueError, match="database unreachable"):
            cache.get_or_set("app/v", broken)
        assert cache.get("app/v", "absent") == "absent"
        # The next caller tries again rather than inheriting the failure.
        assert cache.get_or_set("app/v", Counter(3)) == 3
        assert cache.get("app/v", None) == 3
        assert list(cache.backend.keys()) == ["app/v"]

    def test_invalid_key_is_refused_before_the_factory_runs(
        self, tmp_path: Path
    ) -> None:
        factory = Counter()
        with pytest.raises(ValueError, match=r"'\.\./x'"):
            Cache(tmp_path).get_or_set("../x", factory)
        assert factory.calls == 0

    def test_unstorable_value_raises_and_stores_nothing(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        with pytest.raises(TypeError, match="'app/v'"):
            cache.get_or_set("app/v", lambda: {1, 2})
        assert cache.get("app/v", "absent") == "absent"

    def test_unwritable_cache_computes_with_a_warning(self, tmp_path: Path) -> None:
        """A cache that cannot be locked or written must not fail the caller."""
        blocker = tmp_path / "cache"
        blocker.write_text("a file where the cache directory should be")
        cache = Cache(blocker)
        factory = Counter("value")
        with pytest.warns(pytest.PytestCacheWarning, match="cache"):
            assert cache.get_or_set("app/v", factory) == "value"
        assert factory.calls == 1

    def test_factory_error_pickles(self) -> None:
        import pickle

        error = pickle.loads(pickle.dumps(FactoryError("app/v", "ValueError: x")))
        assert isinstance(error, RuntimeError)
        assert (error.key, error.error) == ("app/v", "ValueError: x")
        assert "'app/v'" in str(error)
        assert "ValueError: x" in str(error)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from pytest_crosscache import Cache

with Cache(Path(sys.argv[1])).lock(sys.argv[2]):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def lock_holder(tmp_path: Path):
    """Start a process holding the lock of a key, as a slow factory would."""
    procs: list[subprocess.Popen[str]] = []

    def hold(cachedir: Path, key: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(cachedir), key],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


class TestBoundedWaits:
    def test_timeout_argument(self, tmp_path: Path, lock_holder) -> None:
        lock_holder(tmp_path, "app/slow")
        factory = Counter()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"'app/slow'") as info:
            Cache(tmp_path).get_or_set("app/slow", factory, timeout=0.3)
        assert time.monotonic() - started < 10
        assert "0.3s" in str(info.value)
        assert factory.calls == 0

    def test_backend_default_timeout(self, tmp_path: Path, lock_holder) -> None:
        lock_holder(tmp_path, "app/slow")
        cache = Cache(tmp_path, DirectoryBackend(tmp_path, lock_timeout=0.2))
        with pytest.raises(TimeoutError, match=r"gave up after 0\.2s .*'app/slow'"):
            cache.get_or_set("app/slow", Counter())

    def test_other_keys_do_not_wait(self, tmp_path: Path, lock_holder) -> None:
        lock_holder(tmp_path, "app/slow")
        assert Cache(tmp_path).get_or_set("app/other", Counter(1), timeout=0.2) == 1

    def test_in_a_session_the_test_fails_normally(
        self, pytester: pytest.Pytester
    ) -> None:
        pytester.makepyfile(
            f"""
            import subprocess, sys

            HOLD_LOCK = {HOLD_LOCK!r}

            def test_waits(cache):
                proc = subprocess.Popen(
                    [sys.executable, "-c", HOLD_LOCK, str(cache.cachedir), "app/slow"],
                    stdout=subprocess.PIPE, text=True,
                )
                try:
                    assert proc.stdout.readline().strip() == "locked"
                    cache.get_or_set("app/slow", lambda: 1)
                finally:
                    proc.kill()
                    proc.wait()
                    proc.stdout.close()
            """
        )
        result = pytester.runpytest_subprocess("-o", "cache_lock_timeout=0.3")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [
                "*TimeoutError: gave up after 0.3s waiting for the lock on cache key 'app/slow'*"
            ]
        )
        result.stdout.no_fnmatch_line("*INTERNALERROR*")


SHARED_VALUE_TESTS = """
import os
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
RUNS = HERE / "factory-runs.txt"
STARTED = HERE / "started"
MAX_AGE = {max_age}


def count_run():
    with RUNS.open("a") as f:
        f.write(f"{{os.getpid()}}\\n")


def slow_factory():
    count_run()
    time.sleep(1)
    return {{"answer": 42}}


def failing_factory():
    count_run()
    # Fail only once every worker is inside a test, so that some callers
    # are surely waiting for this one.
    deadline = time.time() + 30
    while len(list(STARTED.iterdir())) < 4 and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)
    raise ValueError("database unreachable")


FACTORY = {factory}


@pytest.fixture
def shared(cache, request):
    STARTED.mkdir(exist_ok=True)
    (STARTED / request.node.name).touch()
    return cache.get_or_set("demo/shared", FACTORY, max_age=MAX_AGE)


@pytest.mark.parametrize("i", range(8))
def test_uses_shared_value(shared, i):
    assert shared == {{"answer": 42}}
"""


def factory_runs(pytester: pytest.Pytester) -> int:
    runs = pytester.path / "factory-runs.txt"
    return len(runs.read_text().splitlines()) if runs.exists() else 0


class TestAcrossXdistWorkers:
    def test_slow_factory_runs_once(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            test_shared=SHARED_VALUE_TESTS.format(factory="slow_factory", max_age=3600)
        )
        result = pytester.runpytest_subprocess("-n", "4")
        result.assert_outcomes(passed=8)
        assert factory_runs(pytester) == 1
        cachedir = pytester.path / ".pytest_cache"
        assert Cache(cachedir).get("demo/shared", None) == {"answer": 42}

        # The next run finds the value: the factory does not run at all.
        result = pytester.runpytest_subprocess("-n", "4")
        result.assert_outcomes(passed=8)
        assert factory_runs(pytester) == 1

        # Once the value is older than max_age, it is computed again, once.
        age(cachedir, "demo/shared", 3601)
        result = pytester.runpytest_subprocess("-n", "4")
        result.assert_outcomes(passed=8)
        assert factory_runs(pytester) == 2

    def test_failing_factory_fails_every_waiting_test(
        self, pytester: pytest.Pytester
    ) -> None:
        pytester.makepyfile(
            test_shared=SHARED_VALUE_TESTS.format(
                factory="failing_factory", max_age=None
            )
        )
        result = pytester.runpytest_subprocess("-n", "4")
        result.assert_outcomes(errors=8)
        output = result.stdout.str()
        assert "INTERNALERROR" not in output
        message = (
            "FactoryError: computing cache value 'demo/shared' failed in another "
            "process while this one waited for it: ValueError: database unreachable"
        )
        # Count the exception lines of tracebacks, not the short summary.
        waited = sum(
            line.startswith("E ") and message in line for line in result.outlines
        )
        # At least the three tests that waited for the first failure; and
        # a test that ran the factory itself reports the original error.
        assert waited >= 3
        assert "ValueError: database unreachable" in output
        assert waited + factory_runs(pytester) == 8
        assert not (pytester.path / ".pytest_cache" / "v" / "demo" / "shared").exists()

        # Nothing of the failure sticks: a working factory is used next time.
        pytester.makepyfile(
            test_shared=SHARED_VALUE_TESTS.format(factory="slow_factory", max_age=None)
        )
        result = pytester.runpytest_subprocess("-n", "4")
        result.assert_outcomes(passed=8)

    def test_skipping_factory_skips_every_test(self, pytester: pytest.Pytester) -> None:
        """pytest.skip() in a factory is no failure to pass on to waiting tests."""
        pytester.makepyfile(
            """
            import time
            import pytest

            def needs_service():
                time.sleep(0.5)
                pytest.skip("service not available")

            @pytest.mark.parametrize("i", range(4))
            def test_it(cache, i):
                cache.get_or_set("demo/service", needs_service)
            """
        )
        result = pytester.runpytest_subprocess("-n", "2")
        result.assert_outcomes(skipped=4)


def test_no_warnings_escape(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Cache(tmp_path).get_or_set("app/v", Counter())


def test_factory_docstring_example(pytester: pytest.Pytester) -> None:
    """The fixture pattern of the how-to guide, end to end."""
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest

            def build_reference_data():
                return {"rows": 3}

            @pytest.fixture(scope="session")
            def reference_data(pytestconfig):
                return pytestconfig.cache.get_or_set(
                    "myproject/reference-data", build_reference_data, max_age=24 * 3600
                )
            """
        )
    )
    pytester.makepyfile(
        "def test_rows(reference_data): assert reference_data['rows'] == 3"
    )
    pytester.runpytest().assert_outcomes(passed=1)
