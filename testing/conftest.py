"""Shared fixtures: isolated inner pytest runs and builtin-vs-crosscache comparisons."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

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
    # Swaps --lf's deselection for skips whenever pytest's last-failed
    # plugin is registered (and fails every session under pytest 9.2);
    # the tests of that interplay enable it with "-p pytest_lf_skip".
    "-p",
    "no:pytest_lf_skip",
)


class Cli:
    """The ``crosscache`` command run in-process: (status, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from pytest_crosscache.cli import main

        self.capsys.readouterr()
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's own errors
            status = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return status, out, err


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


def header_cachedir(result: pytest.RunResult) -> list[str]:
    """The ``cachedir:`` lines of the session header (before collection)."""
    lines = []
    for line in result.outlines:
        if line.startswith("collect"):
            break
        if line.startswith("cachedir:"):
            lines.append(line)
    return lines


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

    def files(self) -> tuple[dict[str, object], dict[str, object]]:
        """What each provider's runs wrote: (ours, builtin).

        Every file below a directory whose name contains the provider's
        cache directory name (also a relocated one, such as
        ``.cache-ours-moved``), keyed by its path with that name replaced by
        ``CACHE``.  Values (``v/...``) are compared by their JSON content
        (without the stepwise record's timestamp); the supporting files,
        whose wording differs, by presence.  pytest-crosscache's lock files
        and deferred updates (``.locks``, ``.crosscache-*``) and the values
        of its extras (``v/crosscache/...``, such as the test history) are
        left out: they exist only with pytest-crosscache.
        """
        return (
            cache_files(self.pytester.path, self.OURS_DIR),
            cache_files(self.pytester.path, self.BUILTIN_DIR),
        )

    def assert_same_files(self) -> dict[str, object]:
        """Assert both providers wrote the same files; returns them."""
        ours, builtin = self.files()
        assert ours == builtin
        return ours


def cache_files(root: Path, name: str) -> dict[str, object]:
    """The files below ``root`` in directories named after ``name`` (see Twin.files)."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if not path.is_file() or not any(name in part for part in parts[:-1]):
            continue
        if any(part == ".locks" or part.startswith(".crosscache") for part in parts):
            continue
        if "v" in parts and parts[parts.index("v") + 1] == "crosscache":
            # Values of pytest-crosscache's own extras (the test history).
            continue
        key = "/".join(part.replace(name, "CACHE") for part in parts)
        content: object = None
        if "v" in parts:
            try:
                content = json.loads(path.read_text("utf-8"))
            except ValueError:
                content = path.read_bytes()
            if isinstance(content, dict) and "last_cache_date_str" in content:
                content = {**content, "last_cache_date_str": "DATE"}
        found[key] = content
    return found


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
