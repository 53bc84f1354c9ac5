"""The default Redis namespace is the project's identity: its git remote, name or rootdir.

Repositories are made with the real ``git`` command; the plugin reads
their ``.git/config`` without running it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_crosscache.backends.namespace import default_namespace
from pytest_crosscache.backends.namespace import normalise_remote
from pytest_crosscache.backends.namespace import project_identity
from redis_server import RedisServer

FAILING = """
def test_ok():
    pass

def test_broken():
    assert 0
"""


def git(cwd: Path, *args: str) -> None:
    if shutil.which("git") is None:
        pytest.skip("needs the git command")
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def checkout(
    path: Path, remote: str | None, files: dict[str, str] | None = None
) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    if remote is not None:
        git(path, "remote", "add", "origin", remote)
    (path / "pytest.ini").write_text("[pytest]\n")
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    return path


@pytest.fixture(autouse=True)
def _no_tox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOX_ENV_NAME", raising=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/Owner/Repo.git",
        "https://ci-bot:ghp_t0ken@github.com/Owner/Repo",
        "https://GitHub.com:443/Owner/Repo/",
        "http://github.com/Owner/Repo.git/",
        "ssh://git@github.com/Owner/Repo.git",
        "ssh://git@github.com:22/Owner/Repo",
        "git@github.com:Owner/Repo.git",
        "github.com:Owner/Repo",
        "git://github.com/Owner/Repo.git",
    ],
)
def test_forms_of_one_remote_agree(url: str) -> None:
    assert normalise_remote(url) == "github.com/Owner/Repo"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/srv/git/repo.git", "/srv/git/repo"),
        ("file:///srv/git/repo.git", "/srv/git/repo"),
        ("../repo", "/../repo"),
        ("git@[::1]:team/repo.git", "::1/team/repo"),
        ("", None),
        ("https://", None),
        ("https://[broken/x", None),
    ],
)
def test_other_remotes(url: str, expected: str | None) -> None:
    assert normalise_remote(url) == expected


def test_two_checkouts_of_one_repository_share(tmp_path: Path) -> None:
    https = checkout(
        tmp_path / "m1" / "project", "https://u:secret@gitlab.example/g/app.git"
    )
    ssh = checkout(tmp_path / "m2" / "workspace", "git@gitlab.example:g/app")
    assert default_namespace(https) == default_namespace(ssh) == "gitlab.example/g/app"
    assert "secret" not in default_namespace(https)


def test_unrelated_projects_with_one_directory_name_stay_apart(tmp_path: Path) -> None:
    a = checkout(tmp_path / "a" / "project", "https://github.com/alice/one.git")
    b = checkout(tmp_path / "b" / "project", "https://github.com/bob/two.git")
    c = tmp_path / "c" / "project"
    c.mkdir(parents=True)
    (c / "pyproject.toml").write_text('[project]\nname = "Three_Things"\n')
    d = tmp_path / "d" / "project"
    d.mkdir(parents=True)
    names = {default_namespace(p) for p in (a, b, c, d)}
    assert names == {
        "github.com/alice/one",
        "github.com/bob/two",
        "three-things",
        "project",
    }


def test_worktree_and_subdirectory(tmp_path: Path) -> None:
    main = checkout(tmp_path / "main", "git@github.com:o/mono.git")
    git(main, "commit", "-q", "--allow-empty", "-m", "start")
    git(main, "worktree", "add", "-q", str(tmp_path / "feature"))
    assert (tmp_path / "feature" / ".git").is_file()
    assert default_namespace(tmp_path / "feature") == "github.com/o/mono"
    # Two projects in one repository stay apart.
    python = main / "python"
    python.mkdir()
    assert default_namespace(python) == "github.com/o/mono#python"
    assert default_namespace(tmp_path / "feature") != default_namespace(python)


def test_tox_environment_is_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = checkout(tmp_path / "x", "https://github.com/o/r")
    monkeypatch.setenv("TOX_ENV_NAME", "py312")
    assert default_namespace(root) == "github.com/o/r/py312"


def test_config_forms(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    config = root / ".git" / "config"
    config.write_text(
        "# a comment\n"
        '[remote "upstream"]\n\turl = https://github.com/up/stream\n'
        '[Remote "origin"]  \n'
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
        '\tURL = "https://github.com/o/quoted.git" ; trailing comment\n'
    )
    assert project_identity(root) == "github.com/o/quoted"
    config.write_text("[remote.origin]\n\turl = git@host:o/legacy\n")
    assert project_identity(root) == "host/o/legacy"


@pytest.mark.parametrize(
    "dotgit",
    [
        "no remote",
        "only upstream",
        "garbage config",
        "gitdir file to nowhere",
        "gitdir file with garbage",
        "empty remote url",
    ],
)
def test_odd_repositories_fall_back_without_crashing(
    tmp_path: Path, dotgit: str
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "fallback"\n')
    git_dir = root / ".git"
    if dotgit.startswith("gitdir"):
        text = "gitdir: /nonexistent/x\n" if "nowhere" in dotgit else "\x00\xff junk"
        git_dir.write_bytes(text.encode("utf-8", "surrogateescape"))
    else:
        git_dir.mkdir()
        config = {
            "no remote": "[core]\n\tbare = false\n",
            "only upstream": '[remote "upstream"]\n\turl = https://x/y\n',
            "garbage config": '\x00\x01[[[ remote "origin \n url',
            "empty remote url": '[remote "origin"]\n\turl =\n',
        }[dotgit]
        (git_dir / "config").write_text(config)
    assert project_identity(root) == "fallback"


def test_nearest_repository_decides(tmp_path: Path) -> None:
    outer = checkout(tmp_path / "outer", "https://github.com/o/outer")
    inner = outer / "vendored"
    inner.mkdir()
    git(inner, "init", "-q")  # a repository without origin
    (inner / "pyproject.toml").write_text('[project]\nname = "inner"\n')
    assert project_identity(inner) == "inner"


def test_damaged_pyproject_falls_back_to_the_rootdir_name(tmp_path: Path) -> None:
    root = tmp_path / "named-dir"
    root.mkdir()
    for text in ('[project\nname = "x"', "[project]\nname = 3\n", "name = 'top'\n"):
        (root / "pyproject.toml").write_text(text)
        assert project_identity(root) == "named-dir"


# -- whole sessions and the command on one server ---------------------------


def test_sessions_share_by_repository_not_by_directory_name(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
) -> None:
    import uuid

    repo = f"github.com/o/app-{uuid.uuid4().hex[:8]}"
    base = pytester.path
    first = checkout(
        base / "m1" / "project", f"https://{repo}.git", {"test_a.py": FAILING}
    )
    same = checkout(
        base / "m2" / "src", f"git@{repo.replace('/', ':', 1)}", {"test_a.py": FAILING}
    )
    other = checkout(
        base / "m3" / "project", f"https://{repo}-other.git", {"test_a.py": FAILING}
    )
    url = f"--cache-backend={redis_server.url}"

    monkeypatch.chdir(first)
    result = pytester.runpytest(url, "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"cache backend: * (namespace '{repo}')"])
    assert redis_server.stored(repo, "cache/lastfailed") == {
        "test_a.py::test_broken": True
    }
    # Another machine, another directory name, the ssh form: shares.
    monkeypatch.chdir(same)
    lf = pytester.runpytest(url, "--lf")
    lf.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
    # An unrelated project in a directory of the same name: apart.
    monkeypatch.chdir(other)
    apart = pytester.runpytest(url, "--lf")
    apart.stdout.fnmatch_lines(["run-last-failure: no previously failed tests*"])
    # The command agrees with the session.
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CACHE_BACKEND"}
    command = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_crosscache",
            "--backend",
            redis_server.url,
            "lf",
        ],
        cwd=same,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert command.returncode == 0, command.stderr
    assert "test_a.py::test_broken" in command.stdout


def test_pinned_namespace_wins(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_namespace: str,
) -> None:
    root = checkout(
        pytester.path / "project", "https://github.com/o/pinned", {"test_a.py": FAILING}
    )
    (root / "pytest.ini").write_text(f"[pytest]\ncache_namespace = {redis_namespace}\n")
    monkeypatch.chdir(root)
    pytester.runpytest(f"--cache-backend={redis_server.url}").assert_outcomes(
        passed=1, failed=1
    )
    assert redis_server.stored(redis_namespace, "cache/lastfailed") == {
        "test_a.py::test_broken": True
    }
