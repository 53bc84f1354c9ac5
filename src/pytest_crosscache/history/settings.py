"""The history's ini settings, read the same way by sessions and the command."""

from __future__ import annotations

HISTORY_INI = "cache_history"
RUNS_INI = "cache_history_runs"
#: Runs kept per test unless ``cache_history_runs`` says otherwise.
DEFAULT_WINDOW = 20


def parse_window(raw: object) -> int:
    """``cache_history_runs`` from an ini value; ``None`` is the default.

    :raises ValueError: naming the setting and the value when it is not a
        whole number >= 1.
    """
    if raw is None:
        return DEFAULT_WINDOW
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{RUNS_INI} must be a whole number of runs >= 1, got {raw!r}")
    return value
