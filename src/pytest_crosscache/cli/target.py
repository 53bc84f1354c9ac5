"""The cache a command works on, found as pytest finds it, and its backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from pytest_crosscache import _json
from pytest_crosscache.backends.redis_hooks import BACKEND_INI
from pytest_crosscache.backends.redis_hooks import NAMESPACE_INI
from pytest_crosscache.backends.redis_hooks import choose_namespace
from pytest_crosscache.backends.redis_hooks import choose_url
from pytest_crosscache.backends.settings import LOCK_TIMEOUT_INI
from pytest_crosscache.backends.settings import parse_lock_timeout
from pytest_crosscache.cli.discovery import Project
from pytest_crosscache.cli.discovery import locate

if TYPE_CHECKING:
    import argparse

    from pytest_crosscache.backends.protocol import Backend

PROG = "crosscache"


class CommandError(Exception):
    """Ends the command with a message on stderr and an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class Target:
    """The cache a command works on: its local directory and its backend."""

    def __init__(self, args: argparse.Namespace) -> None:
        cwd = Path.cwd()
        # Discovery runs even with --cache-dir: the configuration file also
        # says which backend, namespace and lock timeout the project uses.
        self.project = locate(
            cwd,
            rootdir=getattr(args, "rootdir", None),
            config_file=getattr(args, "config_file", None),
        )
        given = getattr(args, "cache_dir", None)
        if given:
            expanded = os.path.expandvars(os.path.expanduser(given))
            self.cachedir = Path(os.path.normpath(cwd / expanded))
        else:
            self.cachedir = self.project.cache_dir()
        self.backend = open_backend(
            self.cachedir, self.project, getattr(args, "backend", None)
        )


def open_backend(cachedir: Path, project: Project, url: str | None) -> Backend:
    """The backend holding the values of ``cachedir``: every command opens it here.

    As in a pytest session, ``url`` (``--backend``, else a
    ``--cache-backend`` in ``PYTEST_ADDOPTS`` or ``addopts``) wins over the
    ``PYTEST_CACHE_BACKEND`` environment variable, which wins over the
    ``cache_backend`` ini setting; with none of them, values are the files
    below ``cachedir``.
    """
    from pytest_crosscache.backends.directory import DirectoryBackend

    try:
        timeout = parse_lock_timeout(project.setting(LOCK_TIMEOUT_INI))
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None
    url = choose_url(url or project.cache_backend, project.setting(BACKEND_INI))
    if url is None:
        return DirectoryBackend(cachedir, lock_timeout=timeout)

    import importlib.util

    # Imported only now: most projects keep their values in the directory.
    from pytest_crosscache.backends.redis import RedisBackend

    if importlib.util.find_spec("redis") is None:
        raise CommandError(
            "the cache backend needs redis-py: pip install 'pytest-crosscache[redis]'",
            2,
        )
    try:
        return RedisBackend.from_url(
            url,
            namespace=choose_namespace(project.setting(NAMESPACE_INI), project.rootdir),
            cachedir=cachedir,
            lock_timeout=timeout,
        )
    except ValueError as exc:
        # The URL's message, password masked: a usage error.
        raise CommandError(str(exc), 2) from None


def sorted_keys(backend: Backend, glob: str) -> list[str]:
    # Segment by segment, as pytest --cache-show sorts ("a/b" before "a-b").
    return sorted(set(backend.keys(glob)), key=lambda key: key.split("/"))


def decode(data: bytes) -> tuple[bool, Any]:
    try:
        return True, _json.decode(data)
    except (ValueError, RecursionError):
        return False, None
