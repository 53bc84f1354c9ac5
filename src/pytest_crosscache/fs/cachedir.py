"""Locating the cache directory and creating it with its supporting files."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for annotations: the crosscache command must not pay for importing pytest.
    import pytest

DEFAULT_CACHE_DIR = ".pytest_cache"

README = """\
# Test cache directory

pytest keeps state between runs here (the `--lf`, `--ff`, `--nf` and `--sw`
options and the `cache` fixture use it).  This copy was written by
pytest-crosscache, which keeps the same layout as pytest itself:
`v/` holds JSON values, `d/` holds directories made by plugins.

It is safe to delete; do not commit it to version control.
"""

GITIGNORE = "# Created by pytest-crosscache automatically.\n*\n"

# The signature line is fixed by the Cache Directory Tagging Specification.
CACHEDIR_TAG = """\
Signature: 8a477f597d28d172789f06886806bc55
# This file is a cache directory tag created by pytest-crosscache.
# For information about cache directory tags, see https://bford.info/cachedir/
"""

#: Suffix of a cache directory being filled before it is renamed into place.
STAGING_SUFFIX = ".crosscache-new"

SUPPORTING_FILES = {
    "README.md": README,
    ".gitignore": GITIGNORE,
    "CACHEDIR.TAG": CACHEDIR_TAG,
}


def default_cache_dir() -> str:
    """The ``cache_dir`` ini default: inside the tox environment when under tox."""
    tox_env_dir = os.environ.get("TOX_ENV_DIR")
    if tox_env_dir:
        return os.path.join(tox_env_dir, DEFAULT_CACHE_DIR)
    return DEFAULT_CACHE_DIR


def resolve_cache_dir(value: str, rootpath: Path) -> Path:
    """Expand ``~`` and environment variables; anchor relative paths at the rootdir."""
    expanded = os.path.expandvars(os.path.expanduser(value))
    path = Path(expanded)
    return path if path.is_absolute() else rootpath / path


def cache_dir_from_config(config: pytest.Config) -> Path:
    """The cache directory a pytest configuration asks for."""
    return resolve_cache_dir(str(config.getini("cache_dir")), config.rootpath)


def ensure_cache_dir(path: Path) -> None:
    """Create ``path`` with its supporting files unless it already exists.

    The directory is filled under a temporary name next to it and renamed
    into place, so a concurrent session sees either no directory or a
    complete one.  A directory that already exists is left untouched: the
    supporting files are only ever added to directories we create.
    """
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.{os.urandom(6).hex()}{STAGING_SUFFIX}"
    try:
        # os.mkdir applies the umask, giving the same permissions a plain
        # mkdir would.
        staging.mkdir()
        try:
            for name, content in SUPPORTING_FILES.items():
                (staging / name).write_text(content, encoding="utf-8")
            try:
                staging.rename(path)
            except OSError as exc:
                # Losing the race to a concurrent session is fine: its
                # directory is as good as ours.  Anything else is a failure.
                lost_race = exc.errno in (errno.ENOTEMPTY, errno.EEXIST)
                if not lost_race or not path.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        # Name the cache directory, not the staging directory nobody knows of.
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
