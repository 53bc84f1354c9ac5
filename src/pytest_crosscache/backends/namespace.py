"""The default Redis namespace: the project's identity, not its directory's name.

Checkouts in CI are often named ``project``, ``src`` or ``workspace``
whatever they hold, so the rootdir's name alone would let unrelated
projects on one server read and overwrite each other's records.  The
default namespace is, in this order:

1. the ``origin`` remote of the git repository holding the rootdir, read
   from its ``.git/config`` (git is not run), normalised so that the https
   and ssh forms of one repository agree (``github.com/owner/repo``),
   without credentials; a rootdir below the repository's top adds its path
   (``github.com/owner/repo#python``), so two projects in one repository
   stay apart too;
2. else the ``[project] name`` of the rootdir's ``pyproject.toml``;
3. else the rootdir's name.

Two checkouts of one repository on different machines therefore share a
namespace; ``/$TOX_ENV_NAME`` follows under tox.  Nothing here raises: an
unreadable or odd file means "no answer from this source".
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit


def default_namespace(rootpath: Path) -> str:
    """The project's identity, plus the tox environment's name when run by tox."""
    name = project_identity(rootpath)
    tox_env = os.environ.get("TOX_ENV_NAME")
    return f"{name}/{tox_env}" if tox_env else name


def project_identity(rootpath: Path) -> str:
    """The git remote, else the ``[project] name``, else the rootdir's name."""
    return (
        git_identity(rootpath) or _pyproject_name(rootpath) or rootpath.name or "root"
    )


# -- git ----------------------------------------------------------------------


def git_identity(rootpath: Path) -> str | None:
    """The normalised ``origin`` URL of the repository holding ``rootpath``."""
    for top in (rootpath, *rootpath.parents):
        dotgit = top / ".git"
        gitdir: Path | None
        try:
            if dotgit.is_dir():
                gitdir = dotgit
            elif dotgit.is_file():
                gitdir = _linked_gitdir(dotgit)
            else:
                continue
        except OSError:  # a directory we may not look into
            continue
        # The nearest repository decides, with or without an origin: a
        # project must not take the identity of a repository around it.
        if gitdir is None:
            return None
        url = _origin_url(_common_dir(gitdir) / "config")
        identity = normalise_remote(url) if url else None
        if identity is None:
            return None
        inside = rootpath.relative_to(top).as_posix()
        return identity if inside == "." else f"{identity}#{inside}"
    return None


def _linked_gitdir(dotgit: Path) -> Path | None:
    """The git directory a ``.git`` file names (worktrees, submodules)."""
    text = _read(dotgit, 4096)
    if text is None or not text.startswith("gitdir:"):
        return None
    path = Path(text[len("gitdir:") :].strip())
    return path if path.is_absolute() else dotgit.parent / path


def _common_dir(gitdir: Path) -> Path:
    """Where a worktree's shared configuration lives (its ``commondir``)."""
    text = _read(gitdir / "commondir", 4096)
    if not text or not text.strip():
        return gitdir
    path = Path(text.strip())
    return path if path.is_absolute() else gitdir / path


def _read(path: Path, limit: int) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


_QUOTED_SECTION = re.compile(r'^([A-Za-z0-9.-]+)\s+"((?:[^"\\]|\\.)*)"$')


def _origin_url(config: Path) -> str | None:
    """``remote.origin.url`` from a git configuration file, or ``None``."""
    text = _read(config, 1 << 20)
    if text is None:
        return None
    section: tuple[str, str | None] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            header = line[1 : line.find("]")].strip() if "]" in line else ""
            quoted = _QUOTED_SECTION.match(header)
            if quoted:
                section = (quoted[1].lower(), re.sub(r"\\(.)", r"\1", quoted[2]))
            else:
                # The old form [remote.origin] is case-insensitive throughout.
                name, dot, sub = header.lower().partition(".")
                section = (name, sub if dot else None)
            continue
        if section == ("remote", "origin"):
            key, eq, value = line.partition("=")
            if eq and key.strip().lower() == "url":
                return _config_value(value) or None
    return None


_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "\\": "\\", '"': '"'}


def _config_value(raw: str) -> str:
    """A git configuration value: quotes removed, escapes and comments handled."""
    out: list[str] = []
    quoted = False
    chars = iter(raw.strip())
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            out.append(_ESCAPES.get(escaped, escaped))
        elif char == '"':
            quoted = not quoted
        elif char in "#;" and not quoted:
            break
        else:
            out.append(char)
    return "".join(out).strip()


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+):(.*)$")


def normalise_remote(url: str) -> str | None:
    """``host/path`` of a git remote URL: no scheme, credentials, port or ``.git``.

    ``https://user:token@github.com/o/r.git``, ``ssh://git@github.com:22/o/r``
    and ``git@github.com:o/r.git`` all give ``github.com/o/r``; a local
    path keeps its leading ``/``.
    """
    url = url.strip()
    if not url:
        return None
    host = ""
    if "://" in url:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return None
        path = parts.path
        if parts.scheme.lower() == "file" or not host:
            host = ""
    else:
        scp = _SCP_LIKE.match(url)
        # "C:/x" is a Windows path, not host "C".
        if scp and len(scp[1]) > 1:
            host, path = scp[1].strip("[]").lower(), scp[2]
        else:
            path = url
    local = not host
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    if not path and not host:
        return None
    if local:
        return "/" + path
    return f"{host}/{path}" if path else host


# -- pyproject.toml -----------------------------------------------------------


def _pyproject_name(rootpath: Path) -> str | None:
    """The normalised ``[project] name`` of ``rootpath/pyproject.toml``."""
    text = _read(rootpath / "pyproject.toml", 1 << 20)
    if text is None or "name" not in text:
        return None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - pytest itself depends on tomli there
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        data = tomllib.loads(text)
    except (ValueError, RecursionError):
        return None
    project = data.get("project")
    name = project.get("name") if isinstance(project, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    # As package indexes compare names: case and runs of -_. do not matter.
    return re.sub(r"[-_.]+", "-", name.strip()).lower()
