"""Settings read the same way by sessions and the command.

``cache_lock_timeout``, and the expansion of environment variables in
``cache_backend`` and ``cache_namespace``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from pytest_crosscache.backends.directory import DEFAULT_LOCK_TIMEOUT

if TYPE_CHECKING:
    import pytest

LOCK_TIMEOUT_INI = "cache_lock_timeout"


def parse_lock_timeout(raw: object) -> float:
    """Seconds from an ini value; ``None`` is the default.

    :raises ValueError: naming the setting and the value when it is not a
        number of seconds >= 0.
    """
    if raw is None:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise ValueError(
            f"{LOCK_TIMEOUT_INI} must be a number of seconds >= 0, got {raw!r}"
        )
    return value


def lock_timeout(config: pytest.Config) -> float:
    """The session's ``cache_lock_timeout``; a usage error when it is invalid."""
    try:
        return parse_lock_timeout(config.getini(LOCK_TIMEOUT_INI))
    except ValueError as exc:
        import pytest

        raise pytest.UsageError(str(exc)) from None


_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def expand_variables(value: str) -> str:
    """``$NAME`` and ``${NAME}`` replaced by the variable's value, as a shell does.

    Unlike :func:`os.path.expandvars`, a variable that is not set expands
    to nothing: ``cache_backend = ${CACHE_URL}`` without ``CACHE_URL`` (a
    fork's pull request, which gets no secrets) then means "no backend",
    not a URL made of the text ``${CACHE_URL}``.  A literal ``$`` in a URL
    is written ``%24``.
    """
    if "$" not in value:
        return value
    return _VARIABLE.sub(lambda match: os.environ.get(match[1] or match[2], ""), value)
