"""Hooks that other plugins and conftests may implement."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import pytest

    from pytest_crosscache.backends.protocol import Backend

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_crosscache_make_backend(
    config: pytest.Config, cachedir: Path
) -> Backend | None:
    """Return the storage backend that will hold the session's cache values.

    Called once per session, when the cache is first used; that is after
    the initial conftests (those of the rootdir and the command-line
    arguments) are loaded, so a plugin or such a conftest can implement it.
    The first non-``None`` result wins; pytest-crosscache's own
    implementation is ``trylast`` and returns a
    :class:`~pytest_crosscache.DirectoryBackend` for ``cachedir``.

    :param config: the pytest configuration.
    :param cachedir: the resolved local cache directory (``cache_dir``);
        ``Cache.mkdir`` directories always live there.

    .. versionadded:: 0.1
    """
