"""The revision of a session: CI variables, else git's HEAD read from real repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_crosscache.history.revision import COMMIT_VARIABLES
from pytest_crosscache.history.revision import detect_revision
from pytest_crosscache.history.revision import git_head
from pytest_crosscache.history.revision import is_ci


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.org",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_SYSTEM": "/dev/null",
            "HOME": str(cwd),
            "PATH": "/usr/bin:/bin",
        },
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a")
    git(root, "add", "a.txt")
    git(root, "commit", "-q", "-m", "first")
    return root


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def test_branch_from_a_loose_ref(repo: Path) -> None:
    assert git_head(repo) == head(repo)


def test_from_a_subdirectory_of_the_repository(repo: Path) -> None:
    sub = repo / "python" / "tests"
    sub.mkdir(parents=True)
    assert git_head(sub) == head(repo)


def test_packed_refs(repo: Path) -> None:
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert git_head(repo) == head(repo)


def test_detached_head(repo: Path) -> None:
    first = head(repo)
    (repo / "a.txt").write_text("b")
    git(repo, "commit", "-q", "-am", "second")
    git(repo, "checkout", "-q", "--detach", first)
    assert git_head(repo) == first


def test_worktree_reads_its_own_head_and_the_common_refs(repo: Path) -> None:
    first = head(repo)
    worktree = repo.parent / "wt"
    git(repo, "worktree", "add", "-q", "-b", "topic", str(worktree))
    (worktree / "a.txt").write_text("topic")
    git(worktree, "commit", "-q", "-am", "on topic")
    git(repo, "pack-refs", "--all")
    assert (worktree / ".git").is_file()
    assert git_head(worktree) == head(worktree) != first
    assert git_head(repo) == first


def test_unborn_branch_and_no_repository(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert git_head(empty) is None
    assert detect_revision(tmp_path, environ={}) in (None, git_head(tmp_path))


@pytest.mark.parametrize(("service", "variable"), COMMIT_VARIABLES)
def test_ci_variables_win_over_git(repo: Path, service: str, variable: str) -> None:
    assert detect_revision(repo, environ={variable: " abc123 "}) == "abc123"


def test_git_when_no_variable(repo: Path) -> None:
    assert detect_revision(repo, environ={}) == head(repo)


def test_damaged_git_files_leave_the_revision_unknown(repo: Path) -> None:
    (repo / ".git" / "HEAD").write_text("ref: ../../etc/passwd\n")
    assert detect_revision(repo, environ={}) is None
    (repo / ".git" / "HEAD").write_bytes(b"\xff" * 100_000)
    assert detect_revision(repo, environ={}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("false", False),
        ("", False),
        ("0", False),
        (None, False),
    ],
)
def test_ci_variable(value: str | None, expected: bool) -> None:
    environ = {} if value is None else {"CI": value}
    assert is_ci(environ) is expected
