"""Shared fixtures: isolated inner pytest runs and builtin-vs-crosscache comparisons."""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs
import pytest

# Plugins that reorder or reseed inner runs on their own; tests that want
# them enable them explicitly with ``-p randomly`` and the like.
QUIET_INNER_PLUGINS = (
    "-p",
    "no:randomly",
    "-p",
    "no:random_order",
    # Its terminal summary imports hypothesis in every inner run: seconds each.
    "-p",
    "no:hypothesispytest",
)


@pytest.fixture(autouse=True)
def _quiet_inner_runs(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep inner pytester runs deterministic and out of the user's environment."""
    if "pytester" in request.fixturenames:
        # pytester clears PYTEST_ADDOPTS when it is set up, so set it afterwards.
        request.getfixturevalue("pytester")
        monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(QUIET_INNER_PLUGINS))
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
        monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
        monkeypatch.delenv("PYTEST_CACHE_BACKEND", raising=False)


_DURATION = re.compile(r"\bin \d+\.\d+s\b( \([0-9:.]+\))?")
_AGE = re.compile(r"cache from [0-9:]+ ago")


def normalize_output(lines: Sequence[str]) -> list[str]:
    """The part of a run's output that must not depend on the cache provider.

    Drops the session header (platform, plugins, rootdir, cachedir lines)
    and replaces durations, so two runs of the same project can be compared
    line for line.
    """
    out: list[str] = []
    started = False
    for line in lines:
        if not started:
            if line.startswith(("collect", "run-last-failure", "stepwise", "created:")):
                started = True
            else:
                continue
        if line.startswith("cachedir:"):
            continue
        line = _DURATION.sub("in T", line)
        line = _AGE.sub("cache from AGE ago", line)
        out.append(line)
    return out


@attrs.frozen
class TwinResult:
    """The same command run under pytest-crosscache and under pytest's builtin provider."""

    ours: pytest.RunResult
    builtin: pytest.RunResult

    def assert_same(self) -> list[str]:
        """Assert both runs printed the same (normalised) output and exit code.

        Each provider's cache directory is named alike in both outputs.
        """
        ours = normalize_output(
            [
                line.replace(Twin.OURS_DIR, Twin.BUILTIN_DIR)
                for line in self.ours.outlines
            ]
        )
        builtin = normalize_output(self.builtin.outlines)
        assert ours == builtin, "\n".join(
            ["crosscache:", *ours, "", "builtin:", *builtin]
        )
        assert self.ours.ret == self.builtin.ret
        return ours


@attrs.define
class Twin:
    """Runs a pytester project twice per step, once per cache provider.

    Each provider gets its own cache directory inside the project
    (``.cache-ours`` and ``.cache-builtin``), so a scenario of several
    steps (fail, then ``--lf``, ...) evolves both caches side by side and
    every step's output can be compared.
    """

    pytester: pytest.Pytester
    subprocess: bool = False

    OURS_DIR = ".cache-ours"
    BUILTIN_DIR = ".cache-builtin"

    def _run(self, *args: str) -> pytest.RunResult:
        if self.subprocess:
            return self.pytester.runpytest_subprocess(*args)
        return self.pytester.runpytest(*args)

    def run(self, *args: str) -> TwinResult:
        ours = self._run("-o", f"cache_dir={self.OURS_DIR}", *args)
        builtin = self._run(
            "-p", "no:crosscache", "-o", f"cache_dir={self.BUILTIN_DIR}", *args
        )
        return TwinResult(ours, builtin)

    def check(self, *args: str) -> list[str]:
        """Run both and assert identical output; returns the normalised lines."""
        return self.run(*args).assert_same()


@pytest.fixture
def twin(pytester: pytest.Pytester) -> Twin:
    """Compare pytest-crosscache with pytest's builtin provider on one project."""
    return Twin(pytester)


# --- Redis backend: a server per test process, a namespace per test -------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A password-protected ``redis-server`` on a loopback port, shared per process."""
    from redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path):
    """A server of this test's own, which it may kill and restart."""
    from redis_server import RedisServer

    server = RedisServer(tmp_path / "redis-server").start()
    yield server
    server.stop()


@pytest.fixture
def redis_namespace() -> str:
    """A namespace no other test uses, so tests sharing a server stay apart."""
    import uuid

    return f"test-{uuid.uuid4().hex}"
