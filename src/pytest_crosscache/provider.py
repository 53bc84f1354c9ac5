"""Our plugins under the names of pytest's: ``cacheprovider`` and ``stepwise``.

pytest's provider is two internal plugins, and code written for it finds
and switches off their parts by name (``-p no:cacheprovider``,
``pluginmanager.get_plugin("lfplugin")``, ``unregister``).  This module is
registered as ``cacheprovider`` and :class:`StepwiseProvider` as
``stepwise``, each doing what pytest's plugin of that name does, in the
same hooks and order: this module puts the cache on ``config`` and
registers ``lfplugin`` and ``nfplugin`` (a ``tryfirst`` ``pytest_configure``),
serves ``--cache-show``, the ``cache`` fixture and the report header;
:class:`StepwiseProvider` registers ``stepwiseplugin`` when ``--sw`` is on.
Because pluggy refuses to register a blocked name, ``-p no:cacheprovider``
(which also blocks ``stepwise``) and ``-p no:stepwise`` leave them out
exactly as they leave pytest's out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_crosscache._warnings import shown_not_raised
from pytest_crosscache._xdist import has_xdist
from pytest_crosscache._xdist import is_xdist_worker
from pytest_crosscache.cache import Cache
from pytest_crosscache.cache import cache_key
from pytest_crosscache.fs.cachedir import DEFAULT_CACHE_DIR

#: pytest's names for the plugins of its provider; pytest-lf-skip and
#: conftests look them up.
CACHE_PLUGIN = "cacheprovider"
STEPWISE_PLUGIN = "stepwise"
LASTFAILED_PLUGIN = "lfplugin"
NEWFIRST_PLUGIN = "nfplugin"
STEPWISE_SESSION_PLUGIN = "stepwiseplugin"
XDIST_PLUGIN = "crosscache-xdist"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before any conftest is imported, so none can see a config without
    # our cache, whatever order their pytest_configure hooks run in.  The
    # cache directory is resolved only when the cache is first used, so a
    # conftest may still change ``cache_dir`` before that.
    early_config.cache = _install_cache(early_config)  # type: ignore[assignment]


def _install_cache(config: pytest.Config) -> Cache:
    cache = config.stash.get(cache_key, None)
    if cache is None:
        cache = Cache.for_config(config)
        config.stash[cache_key] = cache
    return cache


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # pytest's provider sets config.cache here, replacing whatever an
    # earlier (tryfirst conftest) hook put there; so do we.
    cache = _install_cache(config)
    config.cache = cache  # type: ignore[assignment]
    # Where pytest's provider settles the directory (Cache.for_config): a
    # tryfirst conftest hook before this may still change ``cache_dir``, a
    # later one no longer does, but it may assign ``config.cache._cachedir``.
    cache._settle_location()
    if config.getoption("cacheclear") and not is_xdist_worker(config):
        # Workers start after the controller cleared; clearing again could
        # remove what the controller stored in the meantime.
        with shown_not_raised():
            cache._clear()

    from pytest_crosscache.selection.lastfailed import LastFailedPlugin
    from pytest_crosscache.selection.newfirst import NewFirstPlugin

    # The order of pytest's provider: both wrap pytest_collection_modifyitems
    # as tryfirst wrappers, and the one registered last runs outermost.
    pluginmanager = config.pluginmanager
    pluginmanager.register(LastFailedPlugin(config), LASTFAILED_PLUGIN)
    newfirst = NewFirstPlugin(config)
    pluginmanager.register(newfirst, NEWFIRST_PLUGIN)
    if has_xdist(config):
        from pytest_crosscache.selection.xdist import XdistNodeIds

        pluginmanager.register(XdistNodeIds(newfirst), XDIST_PLUGIN)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("cacheshow") and not config.getoption("help"):
        # wrap_session gives --cache-show the same session header, report
        # header and exit handling as a test run, as pytest's own does.
        from _pytest.main import wrap_session

        from pytest_crosscache.show import show

        return wrap_session(
            config, lambda config, session: show(config, Cache.for_config(config))
        )
    return None


def pytest_report_header(config: pytest.Config) -> str | None:
    if (
        config.getoption("verbose") > 0
        or config.getini("cache_dir") != DEFAULT_CACHE_DIR
    ):
        cachedir = Path(config.cache._cachedir)
        try:
            shown: Path = cachedir.relative_to(config.rootpath)
        except ValueError:
            shown = cachedir
        return f"cachedir: {shown}"
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if not is_xdist_worker(session.config):
        cache = session.config.stash[cache_key]
        cache._settle_deferred()
        cache.backend.tidy()


@pytest.fixture
def cache(request: pytest.FixtureRequest) -> Cache:
    """The session's cache (``config.cache``): values kept across runs.

    ``cache.get(key, default)`` and ``cache.set(key, value)`` with
    ``/``-separated keys (start them with your project's name) and JSON
    values; ``cache.mkdir(name)`` for a directory that persists.
    """
    return request.config.cache  # type: ignore[return-value]


class StepwiseProvider:
    """pytest's ``stepwise`` plugin: registers ``stepwiseplugin`` when ``--sw`` is on.

    A plain (not ``tryfirst``) ``pytest_configure``, as pytest's: it runs
    after the ``pytest_configure`` of conftests, so what they do to the
    cache (relocate it, say) applies to ``--sw`` too.
    """

    def pytest_configure(self, config: pytest.Config) -> None:
        # --sw-skip and --sw-reset imply --sw.
        if config.getoption("stepwise_skip") or config.getoption("stepwise_reset"):
            config.option.stepwise = True
        if config.getoption("stepwise"):
            from pytest_crosscache.selection.stepwise import StepwisePlugin

            config.pluginmanager.register(
                StepwisePlugin(config), STEPWISE_SESSION_PLUGIN
            )
