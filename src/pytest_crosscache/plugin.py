"""The ``crosscache`` pytest plugin: takes over from pytest's builtin cache provider.

pytest imports its builtin ``cacheprovider`` and ``stepwise`` plugins before
it loads plugins from entry points, so by the time this module is
registered they are already in place and their options are already added.
:func:`pytest_addoption` (a historic hook, so it runs the moment this
module is registered) therefore unregisters them, adds only the options
they did not add and registers ours under the same names
(:mod:`pytest_crosscache.provider`); from then on everything is served by
this package.  ``-p no:crosscache`` keeps this module from loading and
leaves pytest's builtin behaviour untouched; ``-p no:cacheprovider`` means
no cache at all, as with pytest alone: then this module adds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_crosscache import hookspecs
from pytest_crosscache import provider
from pytest_crosscache.backends.directory import DEFAULT_LOCK_TIMEOUT
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.settings import LOCK_TIMEOUT_INI
from pytest_crosscache.backends.settings import lock_timeout
from pytest_crosscache.cache import cache_enabled
from pytest_crosscache.fs.cachedir import default_cache_dir
from pytest_crosscache.history import recorder as history_recorder

__all__ = ["cache_enabled"]

BUILTIN_CACHE = provider.CACHE_PLUGIN
BUILTIN_STEPWISE = provider.STEPWISE_PLUGIN
BUILTIN_MODULE = "_pytest.cacheprovider"
#: Where pytest's fixture manager keeps fixture definitions: pytest 8.4 and
#: later versions.
FIXTURE_REGISTRIES = (
    "_arg2fixturedefs",
    "_arg2node2fixturedefs",
    "_arg2nodeid2fixturedefs",
)
REDIS_PLUGIN = "crosscache-redis"
HISTORY_PLUGIN = "crosscache-history"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)
    if pluginmanager.is_blocked(BUILTIN_CACHE):
        # No cache, so none of its extras either.
        return
    # The Redis backend's hooks; they import the backend and redis-py only
    # once a Redis URL is configured.
    from pytest_crosscache.backends import redis_hooks

    pluginmanager.register(redis_hooks, REDIS_PLUGIN)
    pluginmanager.register(history_recorder, HISTORY_PLUGIN)
    # --sf and --shard; they import their planners only when given.
    from pytest_crosscache.scheduling import hooks as scheduling_hooks

    pluginmanager.register(scheduling_hooks, "crosscache-scheduling")


def pytest_addoption(
    parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager
) -> None:
    if pluginmanager.is_blocked(BUILTIN_CACHE):
        # -p no:cacheprovider: no cache, exactly as with pytest alone (which
        # then blocks stepwise too); nothing of ours is offered either.
        return
    builtin_cache = pluginmanager.get_plugin(BUILTIN_CACHE)
    builtin_stepwise = pluginmanager.get_plugin(BUILTIN_STEPWISE)
    # Ours take their names, so that code looking them up finds ours.
    for plugin in (builtin_cache, builtin_stepwise):
        if plugin is not None:
            pluginmanager.unregister(plugin)
    if builtin_cache is None:
        _add_cache_options(parser)
    if builtin_stepwise is None and not pluginmanager.is_blocked(BUILTIN_STEPWISE):
        _add_stepwise_options(parser)
    # A blocked name (-p no:stepwise) is silently not registered, as
    # pytest's own plugin would not be.
    pluginmanager.register(provider, BUILTIN_CACHE)
    pluginmanager.register(provider.StepwiseProvider(), BUILTIN_STEPWISE)
    parser.addini(
        LOCK_TIMEOUT_INI,
        default=str(DEFAULT_LOCK_TIMEOUT),
        help="Seconds to wait for another pytest process's lock on a cache value "
        f"before giving up with a warning (default {DEFAULT_LOCK_TIMEOUT:g})",
    )
    _add_backend_options(parser)


def _add_backend_options(parser: pytest.Parser) -> None:
    """Where the values live: the local directory (default) or a Redis server."""
    parser.getgroup("general").addoption(
        "--cache-backend",
        action="store",
        dest="cache_backend",
        default=None,
        metavar="URL",
        help="Keep cache values in Redis, shared across machines: "
        "redis://[:password@]host[:port][/db], rediss://... for TLS "
        "(default: the cache_backend ini setting or $PYTEST_CACHE_BACKEND)",
    )
    parser.addini(
        "cache_backend",
        default="",
        help="Redis URL for cache values (environment variables expanded); "
        "--cache-backend and $PYTEST_CACHE_BACKEND take precedence",
    )
    parser.addini(
        "cache_namespace",
        default="",
        help="Prefix that keeps this project's values apart on a shared Redis "
        "server (environment variables expanded; default: the project's git "
        "remote, else its [project] name, else the rootdir's name)",
    )


def _add_cache_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("general")
    group.addoption(
        "--lf",
        "--last-failed",
        action="store_true",
        dest="lf",
        help="Run only the tests that failed in the previous run "
        "(all tests if none failed)",
    )
    group.addoption(
        "--ff",
        "--failed-first",
        action="store_true",
        dest="failedfirst",
        help="Run every test, the previous run's failures first (this reordering "
        "may repeat fixture setup and teardown)",
    )
    group.addoption(
        "--nf",
        "--new-first",
        action="store_true",
        dest="newfirst",
        help="Run tests never seen before first, then the rest by file "
        "modification time, newest first",
    )
    group.addoption(
        "--cache-show",
        action="append",
        nargs="?",
        dest="cacheshow",
        help="Print the cache's contents instead of collecting or running tests; "
        "optional argument: a glob of keys to show (default '*')",
    )
    group.addoption(
        "--cache-clear",
        action="store_true",
        dest="cacheclear",
        help="Empty the cache before the run starts",
    )
    group.addoption(
        "--lfnf",
        "--last-failed-no-failures",
        action="store",
        dest="last_failed_no_failures",
        choices=("all", "none"),
        default="all",
        help="What --lf does when no failures are known: 'all' (default) runs "
        "every test, 'none' runs nothing and reports that",
    )
    parser.addini(
        "cache_dir",
        default=default_cache_dir(),
        help="Cache directory; relative paths start at the rootdir",
    )


def _add_stepwise_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("general")
    group.addoption(
        "--sw",
        "--stepwise",
        action="store_true",
        default=False,
        dest="stepwise",
        help="Stop at the first failing test; the next run resumes from it",
    )
    group.addoption(
        "--sw-skip",
        "--stepwise-skip",
        action="store_true",
        default=False,
        dest="stepwise_skip",
        help="Like --sw, but let the first failure pass and stop at the next one",
    )
    group.addoption(
        "--sw-reset",
        "--stepwise-reset",
        action="store_true",
        default=False,
        dest="stepwise_reset",
        help="Like --sw, but forget the remembered position and start from the top",
    )


@pytest.hookimpl(trylast=True)
def pytest_crosscache_make_backend(
    config: pytest.Config, cachedir: Path
) -> DirectoryBackend:
    return DirectoryBackend(cachedir, lock_timeout=lock_timeout(config))


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _forget_builtin_fixtures(session)


def _forget_builtin_fixtures(session: pytest.Session) -> None:
    """Drop the fixtures of the builtin provider we unregistered.

    pytest's fixture manager replays the registration of every plugin seen
    since start-up, the unregistered builtin included, so its ``cache``
    fixture would still be listed by ``pytest --fixtures`` beside ours
    (ours wins for tests, being registered later).  The manager's registry
    is private and its shape differs between pytest versions (name to list,
    or name to node to list): only lists found in it are filtered, and if
    none is found both fixtures stay listed, nothing worse.
    """
    manager = getattr(session, "_fixturemanager", None)
    for attribute in FIXTURE_REGISTRIES:
        registry = getattr(manager, attribute, None)
        if isinstance(registry, dict):
            _drop_builtin_defs(registry)


def _drop_builtin_defs(registry: dict[Any, Any]) -> None:
    for value in registry.values():
        if isinstance(value, dict):
            _drop_builtin_defs(value)
        elif isinstance(value, list):
            value[:] = [d for d in value if _module_of(d) != BUILTIN_MODULE]


def _module_of(fixturedef: object) -> str | None:
    return getattr(getattr(fixturedef, "func", None), "__module__", None)
