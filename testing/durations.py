"""Give a project's test history chosen durations, so inner tests need not be slow."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.protocol import Backend
from pytest_crosscache.history.store import bucket_of
from pytest_crosscache.history.store import durations_key


def seed(where: Path | Backend, durations: dict[str, float]) -> None:
    """Make the history's typical durations of these tests the given seconds.

    Written straight into the store's documented durations values
    (``crosscache/history/durations/NN``), over anything measured, since a
    recorded run would otherwise win over imported numbers.  ``where`` is a
    project's rootdir (its ``.pytest_cache``) or a backend.
    """
    backend = (
        DirectoryBackend(where / ".pytest_cache") if isinstance(where, Path) else where
    )
    by_key: dict[str, dict[str, int]] = {}
    for nodeid, seconds in durations.items():
        file = nodeid.partition("::")[0]
        key = durations_key(bucket_of(file))
        by_key.setdefault(key, {})[nodeid] = round(seconds * 1e9)
    for key, chosen in by_key.items():
        data = backend.read(key)
        stored = json.loads(data) if data is not None else {}
        # The documented layout: version 2, aligned ids and nanoseconds.
        merged = dict(
            zip(stored.get("ids", []), stored.get("nanoseconds", []), strict=True)
        )
        merged.update(chosen)
        value = {
            "version": 2,
            "ids": list(merged),
            "nanoseconds": list(merged.values()),
        }
        backend.write(key, json.dumps(value).encode())
