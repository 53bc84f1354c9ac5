"""A third-party backend through ``pytest_crosscache_make_backend`` (see sqlite_backend.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_crosscache import Backend
from pytest_crosscache import Cache
from sqlite_backend import SQLiteBackend

PROJECT = """
def test_ok():
    pass

def test_broken():
    assert 0
"""


def test_is_a_backend(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "cache.sqlite")
    assert isinstance(backend, Backend)
    cache = Cache(tmp_path, backend)
    cache.set("my/key", {"a": [1, 2]})
    assert cache.get("my/key", None) == {"a": [1, 2]}
    assert cache.update("my/count", lambda n: n + 1, 0) == 1
    assert sorted(backend.keys("my/*")) == ["my/count", "my/key"]
    assert cache.get("my/key", None, max_age=60) == {"a": [1, 2]}


def test_sessions_use_the_plugin_backend(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.syspathinsert(Path(__file__).parent)
    database = tmp_path / "shared.sqlite"
    pytester.makepyfile(test_a=PROJECT)
    args = ("-p", "sqlite_backend", f"--sqlite-cache={database}")
    pytester.runpytest(*args).assert_outcomes(passed=1, failed=1)
    # Nothing in the local values directory: the plugin's backend held it all.
    assert not (pytester.path / ".pytest_cache" / "v").exists()
    assert SQLiteBackend(database).read("cache/lastfailed") is not None
    # Another checkout with its own cache dir, same database: --lf knows.
    rerun = pytester.runpytest(*args, "-o", "cache_dir=other", "--lf")
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
    show = pytester.runpytest(*args, "--cache-show", "cache/lastfailed")
    show.stdout.fnmatch_lines(["cache/lastfailed contains:"])
    # Without the option the plugin returns None and the directory backend serves.
    pytester.runpytest("-p", "sqlite_backend").assert_outcomes(passed=1, failed=1)
    assert (pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed").exists()
