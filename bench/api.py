"""Micro-benchmarks of ``cache.get`` and ``cache.set`` for bench/run.py."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from _pytest.cacheprovider import Cache as BuiltinCache

from pytest_crosscache import Cache

VALUES: dict[str, tuple[Any, int]] = {
    # name: (value, iterations per sample)
    "small": ({"test_a.py::test_one": True, "test_b.py::test_two[1]": True}, 2000),
    "1MB": ("x" * 1_000_000, 40),
}


def bench_api(work: Path, repeat: int) -> dict[str, dict[str, float]]:
    caches: dict[str, Any] = {
        "crosscache": Cache(work / "api-crosscache"),
        # The builtin's config is only used to issue warnings.
        "builtin": BuiltinCache(work / "api-builtin", None, _ispytest=True),  # type: ignore[arg-type]
    }
    results: dict[str, dict[str, float]] = {}
    for name, (value, iterations) in VALUES.items():
        for op in ("set", "get"):
            samples: dict[str, list[float]] = {c: [] for c in caches}
            for round_ in range(max(repeat, 5)):
                order = list(caches) if round_ % 2 == 0 else list(reversed(caches))
                for config in order:
                    cache = caches[config]
                    key = f"bench/{name}"
                    cache.set(key, value)
                    start = time.perf_counter()
                    if op == "set":
                        for _ in range(iterations):
                            cache.set(key, value)
                    else:
                        for _ in range(iterations):
                            cache.get(key, None)
                    samples[config].append((time.perf_counter() - start) / iterations)
            label = f"{op}({name})"
            results[label] = {c: statistics.median(v) for c, v in samples.items()}
            ratio = results[label]["crosscache"] / results[label]["builtin"]
            print(f"  cache.{label}: {ratio:.2f}x builtin", flush=True)
    return results
