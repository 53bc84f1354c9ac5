"""The ``crosscache`` pytest plugin: takes over from pytest's builtin cache provider.

pytest imports its builtin ``cacheprovider`` and ``stepwise`` plugins before
it loads plugins from entry points, so by the time this module is
registered they are already in place and their options are already added.
:func:`pytest_addoption` (a historic hook, so it runs the moment this
module is registered) therefore unregisters them and adds only the options
they did not add; from then on everything is served by this package.
``-p no:crosscache`` keeps this module from loading and leaves pytest's
builtin behaviour untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_crosscache import hookspecs
from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._xdist import is_xdist_worker
from pytest_crosscache.backends.directory import DEFAULT_LOCK_TIMEOUT
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.settings import LOCK_TIMEOUT_INI
from pytest_crosscache.backends.settings import lock_timeout
from pytest_crosscache.cache import Cache
from pytest_crosscache.cache import cache_key
from pytest_crosscache.fs.cachedir import DEFAULT_CACHE_DIR
from pytest_crosscache.fs.cachedir import default_cache_dir
from pytest_crosscache.history import recorder as history_recorder
from pytest_crosscache.selection.lastfailed import LastFailedRecorder
from pytest_crosscache.selection.lastfailed import LastFailedSelection
from pytest_crosscache.selection.newfirst import NewFirstOrdering
from pytest_crosscache.selection.newfirst import NodeIdRecorder

BUILTIN_CACHE = "cacheprovider"
BUILTIN_STEPWISE = "stepwise"
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
    builtin_cache = pluginmanager.get_plugin(BUILTIN_CACHE)
    builtin_stepwise = pluginmanager.get_plugin(BUILTIN_STEPWISE)
    # Unregistered, not blocked: is_blocked() keeps telling what the user
    # asked for with -p no:..., which _serves_stepwise relies on.
    for plugin in (builtin_cache, builtin_stepwise):
        if plugin is not None:
            pluginmanager.unregister(plugin)
    if builtin_cache is None:
        _add_cache_options(parser)
    if builtin_stepwise is None and _serves_stepwise(pluginmanager):
        _add_stepwise_options(parser)
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


def _serves_stepwise(pluginmanager: pytest.PytestPluginManager) -> bool:
    """Stepwise is ours unless the user switched off only pytest's (``-p no:stepwise``).

    ``-p no:cacheprovider`` makes pytest block its stepwise plugin too; we
    still serve both then.
    """
    return not pluginmanager.is_blocked(BUILTIN_STEPWISE) or pluginmanager.is_blocked(
        BUILTIN_CACHE
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


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before any conftest is imported, so none can see a config without
    # our cache, whatever order their pytest_configure hooks run in.
    _install_cache(early_config)


def _install_cache(config: pytest.Config) -> Cache:
    cache = config.stash.get(cache_key, None)
    if cache is None:
        cache = Cache.for_config(config)
        config.stash[cache_key] = cache
        config.cache = cache  # type: ignore[assignment]
    return cache


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    cache = _install_cache(config)
    if config.getoption("cacheclear") and not is_xdist_worker(config):
        # Workers start after the controller cleared; clearing again could
        # remove what the controller stored in the meantime.
        with shown_not_raised():
            cache._clear()

    # Registration order matters: all three wrap pytest_collection_modifyitems
    # as tryfirst wrappers, so the last registered runs outermost.
    failures = LastFailedRecorder(config, cache)
    config.pluginmanager.register(failures, "crosscache-lastfailed")
    if config.getoption("lf") or config.getoption("failedfirst"):
        config.pluginmanager.register(
            LastFailedSelection(config, failures), "crosscache-lastfailed-selection"
        )
    nodeids = NodeIdRecorder(config, cache)
    if config.getoption("newfirst"):
        config.pluginmanager.register(NewFirstOrdering(nodeids), "crosscache-newfirst")
    config.pluginmanager.register(nodeids, "crosscache-nodeids")
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_crosscache.selection.xdist import XdistNodeIds

        config.pluginmanager.register(XdistNodeIds(nodeids), "crosscache-xdist")

    if _serves_stepwise(config.pluginmanager):
        # --sw-skip and --sw-reset imply --sw.
        if config.getoption("stepwise_skip") or config.getoption("stepwise_reset"):
            config.option.stepwise = True
        if config.getoption("stepwise"):
            from pytest_crosscache.selection.stepwise import StepwisePlugin

            config.pluginmanager.register(
                StepwisePlugin(config, cache), "crosscache-stepwise"
            )


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
    if session.config.pluginmanager.has_plugin(BUILTIN_CACHE):
        return
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


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if not is_xdist_worker(session.config):
        cache = session.config.stash[cache_key]
        cache._settle_deferred()
        cache.backend.tidy()


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("cacheshow") and not config.getoption("help"):
        # wrap_session gives --cache-show the same session header, report
        # header and exit handling as a test run, as pytest's own does.
        from _pytest.main import wrap_session

        from pytest_crosscache.show import show

        return wrap_session(
            config, lambda config, session: show(config, config.stash[cache_key])
        )
    return None


def pytest_report_header(config: pytest.Config) -> str | None:
    if (
        config.getoption("verbose") > 0
        or config.getini("cache_dir") != DEFAULT_CACHE_DIR
    ):
        cachedir = config.stash[cache_key].cachedir
        try:
            shown: Path = cachedir.relative_to(config.rootpath)
        except ValueError:
            shown = cachedir
        return f"cachedir: {shown}"
    return None


@pytest.fixture
def cache(request: pytest.FixtureRequest) -> Cache:
    """The session's pytest_crosscache.Cache: values kept across runs.

    ``cache.get(key, default)`` and ``cache.set(key, value)`` with
    ``/``-separated keys (start them with your project's name) and JSON
    values; ``cache.mkdir(name)`` for a directory that persists.
    """
    return request.config.stash[cache_key]
