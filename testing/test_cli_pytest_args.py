"""The command finds the cache pytest uses, whatever pytest's own arguments say.

``-o cache_dir=...``, ``-c``, ``--rootdir`` and ``--cache-backend`` can
reach pytest through ``PYTEST_ADDOPTS`` or the ``addopts`` setting rather
than the command line.  Each test runs real pytest sessions (failing
tests), then ``crosscache lf`` as a process, and checks it lists exactly
the failures pytest recorded, wherever pytest put them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUIET_INNER_PLUGINS
from pytest_crosscache._keys import LASTFAILED_KEY
from pytest_crosscache.cli import main

#: pytest 9.1 applies ``-o`` options found in ``addopts`` to settings;
#: earlier versions only those of the command line and PYTEST_ADDOPTS.
ADDOPTS_OVERRIDES_APPLY = pytest.version_tuple[:2] >= (9, 1)

FAILING = """
def test_ok(): pass
def test_broken(): assert 0
"""


def run(
    pytester: pytest.Pytester, args: list[str], addopts: str = ""
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTEST_ADDOPTS"] = " ".join([*QUIET_INNER_PLUGINS, addopts]).strip()
    env.pop("PYTEST_CACHE_BACKEND", None)
    return subprocess.run(
        args, cwd=pytester.path, env=env, capture_output=True, text=True, timeout=120
    )


def session(pytester: pytest.Pytester, addopts: str = "") -> None:
    done = run(pytester, [sys.executable, "-m", "pytest", "-q"], addopts)
    assert done.returncode == 1, done.stdout + done.stderr


def crosscache(
    pytester: pytest.Pytester, *args: str, addopts: str = ""
) -> subprocess.CompletedProcess[str]:
    return run(pytester, [sys.executable, "-m", "pytest_crosscache", *args], addopts)


def assert_lf_finds_the_failure(pytester: pytest.Pytester, addopts: str = "") -> None:
    done = crosscache(pytester, "lf", "--json", addopts=addopts)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "test_project.py": ["test_project.py::test_broken"]
    }


def cachedir_of_show(pytester: pytest.Pytester, addopts: str = "") -> Path:
    done = crosscache(pytester, "show", addopts=addopts)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.splitlines()[0].removeprefix("cachedir: "))


@pytest.mark.parametrize(
    "spelling",
    [
        "-o cache_dir=from-env",
        "-ocache_dir=from-env",
        "--override-ini cache_dir=from-env",
        "--override-ini=cache_dir=from-env",
        "-o 'cache_dir=from-env'",
        "-o cache_dir=elsewhere -o cache_dir=from-env",
    ],
)
def test_override_in_pytest_addopts(pytester: pytest.Pytester, spelling: str) -> None:
    pytester.makepyfile(test_project=FAILING)
    session(pytester, spelling)
    assert (pytester.path / "from-env" / "v" / "cache" / "lastfailed").is_file()
    assert cachedir_of_show(pytester, spelling) == pytester.path / "from-env"
    assert_lf_finds_the_failure(pytester, spelling)
    # Without the option, the command looks where pytest would then.
    assert crosscache(pytester, "lf").stdout == "no failures recorded\n"


@pytest.mark.parametrize(
    "ini",
    [
        "[pytest]\naddopts = -o cache_dir=from-ini\n",
        "[pytest]\naddopts = --override-ini=cache_dir=from-ini -q\n",
    ],
)
def test_override_in_addopts(pytester: pytest.Pytester, ini: str) -> None:
    pytester.makefile(".ini", pytest=ini)
    pytester.makepyfile(test_project=FAILING)
    session(pytester)
    expected = "from-ini" if ADDOPTS_OVERRIDES_APPLY else ".pytest_cache"
    assert (pytester.path / expected / "v" / "cache" / "lastfailed").is_file()
    assert cachedir_of_show(pytester) == pytester.path / expected
    assert_lf_finds_the_failure(pytester)


def test_override_in_pyproject_addopts_list(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        addopts = ["-o", "cache_dir=from-toml"]
        """
    )
    pytester.makepyfile(test_project=FAILING)
    session(pytester)
    expected = "from-toml" if ADDOPTS_OVERRIDES_APPLY else ".pytest_cache"
    assert cachedir_of_show(pytester) == pytester.path / expected
    assert_lf_finds_the_failure(pytester)


def test_environment_wins_over_addopts(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = -o cache_dir=from-ini\n")
    pytester.makepyfile(test_project=FAILING)
    session(pytester, "-o cache_dir=from-env")
    assert cachedir_of_show(pytester, "-o cache_dir=from-env") == (
        pytester.path / "from-env"
    )
    assert_lf_finds_the_failure(pytester, "-o cache_dir=from-env")


def test_environment_overrides_addopts_itself(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = -o cache_dir=from-ini\n")
    pytester.makepyfile(test_project=FAILING)
    session(pytester, "-o addopts=")
    assert cachedir_of_show(pytester, "-o addopts=") == pytester.path / ".pytest_cache"
    assert_lf_finds_the_failure(pytester, "-o addopts=")


@pytest.mark.parametrize("spelling", ["-c {}", "--config-file={}", "-c{}"])
def test_config_file_in_pytest_addopts(
    pytester: pytest.Pytester, spelling: str
) -> None:
    (pytester.path / "ci").mkdir()
    (pytester.path / "ci" / "pytest-ci.ini").write_text(
        "[pytest]\ncache_dir = ci-cache\n"
    )
    pytester.makepyfile(test_project=FAILING)
    addopts = spelling.format("ci/pytest-ci.ini") + " --rootdir=."
    session(pytester, addopts)
    assert cachedir_of_show(pytester, addopts) == pytester.path / "ci-cache"
    assert_lf_finds_the_failure(pytester, addopts)


def test_rootdir_in_pytest_addopts(pytester: pytest.Pytester) -> None:
    (pytester.path / "sub").mkdir()
    (pytester.path / "sub" / "pytest.ini").write_text("[pytest]\ncache_dir = c\n")
    pytester.makepyfile(test_project=FAILING)
    addopts = "--rootdir=sub"
    done = run(pytester, [sys.executable, "-m", "pytest", "-q", "."], addopts)
    assert done.returncode == 1, done.stdout
    assert cachedir_of_show(pytester, addopts) == pytester.path / "sub" / "c"


@pytest.mark.parametrize("where", ["env", "ini", "env-o"])
def test_cache_backend_in_pytest_args(
    pytester: pytest.Pytester, redis_server, redis_namespace: str, where: str
) -> None:
    """Failures kept in Redis: the command reads them from there too."""
    pytester.makepyfile(test_project=FAILING)
    addopts = f"-o cache_namespace={redis_namespace}"
    if where == "env":
        addopts += f" --cache-backend={redis_server.url}"
    elif where == "env-o":
        addopts += f" -o cache_backend={redis_server.url}"
    else:
        pytester.makeini(f"[pytest]\naddopts = --cache-backend {redis_server.url}\n")
    session(pytester, addopts)
    # The local copy goes: only Redis has the record now.
    import shutil

    shutil.rmtree(pytester.path / ".pytest_cache")
    assert_lf_finds_the_failure(pytester, addopts)
    done = crosscache(pytester, "show", addopts=addopts)
    assert "values in: redis://" in done.stdout
    assert redis_server.password not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("addopts", "message"),
    [
        ("-o 'unclosed", "PYTEST_ADDOPTS: No closing quotation"),
        ("-o cache_dir", "expects option=value style (got: 'cache_dir')"),
        ("-o", "PYTEST_ADDOPTS: -o expects a value"),
        ("--rootdir=nowhere", "not found (from --rootdir)"),
        ("-c missing.ini", "config file"),
    ],
)
def test_malformed_pytest_addopts(
    pytester: pytest.Pytester, addopts: str, message: str
) -> None:
    done = crosscache(pytester, "show", addopts=addopts)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_values_nested_too_deep_for_json(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    for depth in (10_000, 100_000):
        text = "[" * depth + "]" * depth
        assert main(["set", "app/deep", text]) == 2
        err = capsys.readouterr().err
        assert "nested too deeply" in err
        assert "'app/deep'" in err
    assert not (pytester.path / ".pytest_cache").exists()
    # Deep but decodable values are stored.
    assert main(["set", "app/deep", "[" * 50 + "]" * 50]) == 0


def test_deep_value_from_stdin_as_a_process(pytester: pytest.Pytester) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_crosscache", "set", LASTFAILED_KEY, "-"],
        cwd=pytester.path,
        input='{"a":' * 200_000 + "1" + "}" * 200_000,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "nested too deeply" in done.stderr
    assert "Traceback" not in done.stderr
