"""Which commit a session ran on, and whether it ran in CI.

The revision comes from the first of these environment variables that is
set (:data:`COMMIT_VARIABLES`), else from the git repository holding the
rootdir, read from its files (no ``git`` process is started), else it is
unknown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

#: CI services and the variable in which each gives the commit being built.
COMMIT_VARIABLES = (
    ("GitHub Actions", "GITHUB_SHA"),
    ("GitLab CI", "CI_COMMIT_SHA"),
    ("CircleCI", "CIRCLE_SHA1"),
    ("Buildkite", "BUILDKITE_COMMIT"),
    ("Jenkins (git plugin)", "GIT_COMMIT"),
    ("Azure Pipelines", "BUILD_SOURCEVERSION"),
    ("Travis CI", "TRAVIS_COMMIT"),
)
#: Set by every major CI service; its presence makes a run a CI run.
CI_VARIABLE = "CI"
#: Values of ``CI`` that say "not CI".
_NOT_CI = ("", "0", "false", "no", "off")

#: Longer values are not commits: a revision is stored with every run.
MAX_REVISION = 100
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
#: Symbolic references are followed at most this deep (git's own limit is 5).
_MAX_DEPTH = 5
#: Bigger ``.git`` files or refs than this are not git's.
_MAX_SMALL_FILE = 64 * 1024


def is_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``CI`` variable is set to something other than false."""
    env = os.environ if environ is None else environ
    return env.get(CI_VARIABLE, "").strip().lower() not in _NOT_CI


def detect_revision(
    rootdir: Path, environ: Mapping[str, str] | None = None
) -> str | None:
    """The commit of this session: a CI variable, else git's ``HEAD``, else ``None``."""
    env = os.environ if environ is None else environ
    for _, name in COMMIT_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            return value[:MAX_REVISION]
    try:
        return git_head(rootdir)
    except (OSError, ValueError):
        # Unreadable or strange repositories just leave the revision unknown.
        return None


def git_head(start: Path) -> str | None:
    """The commit ``HEAD`` points at in the repository holding ``start``.

    Reads git's files as git does: ``.git`` as a directory, or as a file
    saying ``gitdir: PATH`` (worktrees, submodules) whose directory may
    name a ``commondir`` holding the shared refs; a detached ``HEAD``
    holding a hash, or a symbolic one (``ref: refs/heads/main``) resolved
    through loose refs, then ``packed-refs``.  ``None`` when there is no
    repository, the branch has no commit yet, or refs are stored in a way
    this does not read (reftable).
    """
    gitdir = _find_gitdir(start.resolve())
    if gitdir is None:
        return None
    commondir = gitdir
    common_file = gitdir / "commondir"
    if common_file.is_file():
        commondir = (gitdir / _read_small(common_file).strip()).resolve()
    content = _read_small(gitdir / "HEAD").strip()
    for _ in range(_MAX_DEPTH):
        if _SHA.fullmatch(content):
            return content
        if not content.startswith("ref:"):
            return None
        ref = content[4:].strip()
        if not ref.startswith("refs/") or ".." in ref.split("/"):
            return None
        found = _read_ref(gitdir, commondir, ref)
        if found is None:
            return None
        content = found
    return None


def _find_gitdir(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        dotgit = directory / ".git"
        if dotgit.is_dir():
            return dotgit
        if dotgit.is_file():
            text = _read_small(dotgit).strip()
            if not text.startswith("gitdir:"):
                return None
            return (directory / text[len("gitdir:") :].strip()).resolve()
    return None


def _read_ref(gitdir: Path, commondir: Path, ref: str) -> str | None:
    # Per-worktree refs (HEAD's own, bisect) live in the worktree's gitdir,
    # branches and tags in the common directory.
    for base in dict.fromkeys((gitdir, commondir)):
        path = base / ref
        if path.is_file():
            return _read_small(path).strip()
    packed = commondir / "packed-refs"
    if not packed.is_file():
        return None
    with packed.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            sha, _, name = line.rstrip("\n").partition(" ")
            if name == ref and _SHA.fullmatch(sha):
                return sha
    return None


def _read_small(path: Path) -> str:
    with path.open("rb") as file:
        data = file.read(_MAX_SMALL_FILE + 1)
    if len(data) > _MAX_SMALL_FILE:
        raise ValueError(f"{path} is too big to be git's")
    return data.decode("utf-8", "replace")
