"""How a pytest session picks, checks and reports the Redis backend.

Registered as the plugin ``crosscache-redis`` at pytest start-up, so it is
kept light: it imports neither pytest (the ``crosscache`` command uses its
settings too) nor redis-py, and loads :mod:`pytest_crosscache.backends.redis`
only once a Redis URL is configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_crosscache.backends._redis_url import RedisURL
from pytest_crosscache.backends._redis_url import redact
from pytest_crosscache.backends.namespace import default_namespace
from pytest_crosscache.backends.settings import expand_variables

if TYPE_CHECKING:
    import pytest

    from pytest_crosscache.backends.redis import RedisBackend

BACKEND_OPTION = "cache_backend"
BACKEND_ENV = "PYTEST_CACHE_BACKEND"
BACKEND_INI = "cache_backend"
NAMESPACE_INI = "cache_namespace"


def choose_url(option: str | None, ini: str | None) -> str | None:
    """The Redis URL: the option, else ``$PYTEST_CACHE_BACKEND``, else the ini value.

    Environment variables in the ini value are expanded, those not set to
    nothing; an empty result means no Redis.  Sessions and the
    ``crosscache`` command both choose here.
    """
    value = option or os.environ.get(BACKEND_ENV) or expand_variables(ini or "")
    return value.strip() or None


def configured_url(config: pytest.Config) -> str | None:
    """The Redis URL of the session: option, then environment, then ini."""
    return choose_url(
        config.getoption(BACKEND_OPTION, None), str(config.getini(BACKEND_INI) or "")
    )


def choose_namespace(ini: str | None, rootpath: Path) -> str:
    """The ``cache_namespace`` value with variables expanded, or the default.

    The default is the project's identity (:mod:`.namespace`).
    """
    value = expand_variables(ini or "").strip()
    return value or default_namespace(rootpath)


def namespace_from_config(config: pytest.Config) -> str:
    """The session's namespace: :func:`choose_namespace` of its ini value."""
    return choose_namespace(str(config.getini(NAMESPACE_INI) or ""), config.rootpath)


def check_url(value: str) -> RedisURL:
    """Parse a configured URL; a usage error names it (password redacted)."""
    try:
        return RedisURL(value)
    except ValueError as exc:
        import pytest

        raise pytest.UsageError(str(exc)) from None


def pytest_crosscache_make_backend(
    config: pytest.Config, cachedir: Path
) -> RedisBackend | None:
    """A :class:`RedisBackend` when a Redis URL is configured, else ``None``."""
    value = configured_url(config)
    if value is None:
        return None
    url = check_url(value)
    try:
        import redis  # noqa: F401
    except ImportError:
        import pytest

        raise pytest.UsageError(
            f"the cache backend {url.redacted} needs redis-py: "
            "pip install 'pytest-crosscache[redis]'"
        ) from None
    from pytest_crosscache.backends.redis import RedisBackend
    from pytest_crosscache.backends.settings import lock_timeout

    backend = RedisBackend(
        url,
        namespace=namespace_from_config(config),
        cachedir=cachedir,
        lock_timeout=lock_timeout(config),
    )
    backend.on_outage = _session_warner(config)
    return backend


def _session_warner(config: pytest.Config) -> Callable[[str], None]:
    """Report an outage in the session's warnings summary, whenever it happens.

    The backend usually connects in ``pytest_configure``, where pytest
    captures no warnings; recording it through the hook that feeds the
    summary shows it there exactly once, and never turns it into an error
    under ``-W error``: no test caused it.
    """

    def warn(message: str) -> None:
        import warnings

        import pytest

        record = warnings.WarningMessage(
            pytest.PytestCacheWarning(message),
            pytest.PytestCacheWarning,
            __file__,
            0,
        )
        config.hook.pytest_warning_recorded.call_historic(
            kwargs={
                "warning_message": record,
                "when": "config",
                "nodeid": "",
                "location": None,
            }
        )

    return warn


def pytest_configure(config: pytest.Config) -> None:
    # Refuse a bad URL before anything runs, even if nothing uses the cache.
    value = configured_url(config)
    if value is not None:
        check_url(value)


def pytest_report_header(config: pytest.Config) -> str | None:
    value = configured_url(config)
    if value is None:
        return None
    return (
        f"cache backend: {redact(value)} (namespace {namespace_from_config(config)!r})"
    )
