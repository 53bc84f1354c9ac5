"""``--cache-show``: print what the cache holds, in pytest's format."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from pytest_crosscache._keys import DIRS_DIR
from pytest_crosscache._keys import HISTORY_PREFIX
from pytest_crosscache._keys import hides_history
from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._warnings import warn_cache
from pytest_crosscache.cache import Cache
from pytest_crosscache.fs.paths import UnsafePathError
from pytest_crosscache.fs.paths import check_glob
from pytest_crosscache.fs.paths import files_below

_UNREADABLE = object()


def show(config: pytest.Config, cache: Cache) -> int:
    """Write the cache's values and directory files matching the glob; exit code 0.

    Names the backend or the file system hold are checked before they are
    read (:mod:`pytest_crosscache.fs.paths`); unsafe ones are skipped with
    a :class:`pytest.PytestCacheWarning` naming them, shown even under
    ``-W error``: the cache's content is no fault of this command.
    """
    with shown_not_raised():
        return _show(config, cache)


def _show(config: pytest.Config, cache: Cache) -> int:
    line, sep = _writer(config)
    line(f"cachedir: {cache.cachedir}")
    glob = config.getoption("cacheshow")[0] or "*"
    try:
        check_glob(glob)
    except UnsafePathError as exc:
        warn_cache(f"--cache-show: {exc}; nothing shown")
        return 0
    # A backend may keep the values somewhere else than the local directory.
    # Sorted segment by segment, as pytest sorts paths ("a/b" before "a-b").
    # A glob with ".." can match one value along several paths: once is enough.
    keys = sorted(set(cache.backend.keys(glob)), key=_segments)
    if hides_history(glob):
        keys = [key for key in keys if not key.startswith(f"{HISTORY_PREFIX}/")]
    if not keys and not cache.cachedir.is_dir():
        line("cache is empty")
        return 0

    from pprint import pformat

    sep("-", f"cache values for {glob!r}")
    for key in keys:
        value = cache.get(key, _UNREADABLE)
        if value is _UNREADABLE:
            line(f"{_printable(key)} contains unreadable content, will be ignored")
        else:
            line(f"{_printable(key)} contains:")
            for text in pformat(value).splitlines():
                line(f"  {text}")

    dirs = cache.cachedir / DIRS_DIR
    if dirs.is_dir():
        sep("-", f"cache directories for {glob!r}")
        for name in sorted(files_below(cache.cachedir, DIRS_DIR, glob), key=_segments):
            try:
                size = (dirs / name).stat().st_size
            except OSError:
                continue  # removed while we looked
            line(f"{DIRS_DIR}/{_printable(name)} is a file of length {size}")
    return 0


def _segments(name: str) -> list[str]:
    return name.split("/")


def _printable(name: str) -> str:
    """``name`` with what the terminal cannot encode (lone surrogates) escaped."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _writer(
    config: pytest.Config,
) -> tuple[Callable[[str], None], Callable[[str, str], None]]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        return reporter.write_line, reporter.write_sep

    def line(text: str) -> None:
        print(text, file=sys.stdout)

    def sep(char: str, title: str) -> None:
        print(f" {title} ".center(80, char), file=sys.stdout)

    return line, sep
