"""Where the test history is kept: ordinary cache values, sharded by test file.

Layout (every value is JSON, so ``--cache-show``, ``--cache-clear``, every
backend and pytest's builtin provider handle it like any other value):

``crosscache/history/runs``
    The runs index: ``{"version": 1, "runs": {RUN_ID: {"started", "revision",
    "ci", "duration", "tests", "failed"}}}``, the newest :data:`RUNS_KEPT`.
``crosscache/history/tests/NN``
    One of :data:`BUCKETS` buckets (``NN`` in hex), chosen by a stable hash
    of the test's file: ``{"version": 1, "runs": [[RUN_ID, STARTED,
    REVISION, CI], ...], "files": {FILE: {NAME: CELLS}}}``.  ``runs`` are
    the bucket's columns, oldest first; ``CELLS`` holds three characters
    per column: the outcome letter (``.`` when the test did not run in
    that run) and its duration in two characters (a log scale from 1 us
    to 11 days in 4096 steps, 0.35% apart; see ``history/_bucket.py``).
    A node id is ``FILE::NAME`` (just ``FILE`` when ``NAME`` is empty).
``crosscache/history/durations/NN``
    ``{"version": 2, "ids": [NODEID, ...], "nanoseconds": [NS, ...]}``
    (two aligned lists; whole nanoseconds, which a reader's JSON parser
    turns into numbers faster than decimals, and which hold the four
    significant digits of the history exactly): each test's median
    duration over its window,
    rewritten with its bucket, so that :func:`recorded_durations` reads
    small values and computes nothing.  Durations imported with
    ``crosscache durations --import`` live here too, until measured ones
    replace them.  The layout of version 1, ``{FILE: {NAME: SECONDS}}``,
    is still read (and written as version 2 the next time).

A session touches only the buckets of the files whose tests ran, so a small
run (``--lf``) reads and writes a small part of a big suite's history.  Every
outcome stays tied to its run id, so histories combine as a union by run
id: the same run met twice (merging shard caches that share an ancestor)
counts once.  Writers hold the single lock :data:`LOCK_KEY` around the
whole read-modify-write of the keys they touch.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from itertools import repeat
from operator import attrgetter
from operator import truediv
from typing import TYPE_CHECKING
from typing import Any

from pytest_crosscache._keys import HISTORY_PREFIX
from pytest_crosscache.history._bucket import CELL
from pytest_crosscache.history._bucket import FORMAT_VERSION
from pytest_crosscache.history._bucket import NOT_RUN
from pytest_crosscache.history._bucket import Bucket
from pytest_crosscache.history._bucket import Column
from pytest_crosscache.history._bucket import OnDamage
from pytest_crosscache.history._bucket import decode_json
from pytest_crosscache.history._bucket import encode_duration
from pytest_crosscache.history._bucket import encode_json
from pytest_crosscache.history._bucket import join_nodeid
from pytest_crosscache.history._bucket import report_damage
from pytest_crosscache.history._bucket import split_nodeid
from pytest_crosscache.history._bucket import to_nanoseconds
from pytest_crosscache.history.model import History
from pytest_crosscache.history.model import Run
from pytest_crosscache.history.model import TestHistory
from pytest_crosscache.history.model import is_number
from pytest_crosscache.history.model import run_from_json
from pytest_crosscache.history.model import run_to_json
from pytest_crosscache.history.settings import DEFAULT_WINDOW

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_crosscache.backends.protocol import Backend
    from pytest_crosscache.cache import Cache

RUNS_KEY = f"{HISTORY_PREFIX}/runs"
TESTS_PREFIX = f"{HISTORY_PREFIX}/tests"
DURATIONS_PREFIX = f"{HISTORY_PREFIX}/durations"
#: The lock every writer of the history holds (no value is stored there).
LOCK_KEY = HISTORY_PREFIX

#: How many buckets the tests are spread over.  Part of the layout: a
#: different number would put files in other buckets.
BUCKETS = 64
#: Runs kept in the runs index (the buckets know each run they reference).
RUNS_KEPT = 500

# --- keys -------------------------------------------------------------------


def bucket_of(file: str) -> int:
    """The bucket of a test file: a hash that is the same on every machine."""
    return zlib.crc32(file.encode("utf-8", "surrogateescape")) % BUCKETS


def tests_key(index: int) -> str:
    return f"{TESTS_PREFIX}/{index:02x}"


def durations_key(index: int) -> str:
    return f"{DURATIONS_PREFIX}/{index:02x}"


def history_keys() -> list[str]:
    """Every key the history may use."""
    return [
        RUNS_KEY,
        *(tests_key(i) for i in range(BUCKETS)),
        *(durations_key(i) for i in range(BUCKETS)),
    ]


# --- the runs index ---------------------------------------------------------


def read_runs(backend: Backend, on_damage: OnDamage | None = None) -> dict[str, Run]:
    """The runs index, by run id; damaged entries are left out."""
    return _runs_from(backend.read(RUNS_KEY), on_damage)


def _runs_from(data: bytes | None, on_damage: OnDamage | None) -> dict[str, Run]:
    stored = decode_json(data, RUNS_KEY, on_damage)
    if stored is None:
        return {}
    raw = stored.get("runs") if isinstance(stored, dict) else None
    if not isinstance(raw, dict):
        report_damage(on_damage, f"{RUNS_KEY!r} is not a runs index")
        return {}
    runs: dict[str, Run] = {}
    for run_id, value in raw.items():
        run = run_from_json(run_id, value)
        if run is None:
            report_damage(on_damage, f"{RUNS_KEY!r}: run {run_id!r} is damaged")
        else:
            runs[run_id] = run
    return runs


def _runs_bytes(runs: Mapping[str, Run]) -> bytes:
    newest = sorted(runs.values(), key=lambda run: (run.started, run.id))[-RUNS_KEPT:]
    return encode_json(
        {
            "version": FORMAT_VERSION,
            "runs": {run.id: run_to_json(run) for run in newest},
        }
    )


# --- durations keys ---------------------------------------------------------

#: Version of the durations values' layout (the buckets' is FORMAT_VERSION).
DURATIONS_VERSION = 2


def _parse_durations(
    data: bytes | None, key: str, on_damage: OnDamage | None
) -> dict[str, int]:
    """A durations value as node id -> nanoseconds; damaged entries are left out."""
    ids, nanoseconds = _durations_lists(data, key, on_damage)
    return dict(zip(ids, nanoseconds, strict=True))


def _durations_lists(
    data: bytes | None, key: str, on_damage: OnDamage | None
) -> tuple[list[str], list[int]]:
    """A durations value as aligned lists of node ids and nanoseconds."""
    stored = decode_json(data, key, on_damage)
    if stored is None:
        return [], []
    if not isinstance(stored, dict):
        report_damage(on_damage, f"{key!r} is not a mapping of durations")
        return [], []
    if stored.get("version") == DURATIONS_VERSION:
        ids = stored.get("ids")
        nanoseconds = stored.get("nanoseconds")
        if (
            not isinstance(ids, list)
            or not isinstance(nanoseconds, list)
            or len(ids) != len(nanoseconds)
        ):
            report_damage(on_damage, f"{key!r} is not a durations value")
            return [], []
        if _all_durations(ids, nanoseconds):
            return ids, nanoseconds
        kept = [
            (nodeid, value)
            for nodeid, value in zip(ids, nanoseconds, strict=True)
            if isinstance(nodeid, str)
            and isinstance(value, int)
            and not isinstance(value, bool)
            and value >= 0
        ]
        report_damage(
            on_damage, f"{key!r}: left out {len(ids) - len(kept)} damaged entries"
        )
        return [nodeid for nodeid, _ in kept], [value for _, value in kept]
    # Version 1, {FILE: {NAME: SECONDS}}, as stored before.
    result: dict[str, int] = {}
    bad = 0
    for file, tests in stored.items():
        if not isinstance(tests, dict):
            bad += 1
            continue
        for name, seconds in tests.items():
            if is_number(seconds) and seconds >= 0:
                result[join_nodeid(file, name)] = to_nanoseconds(seconds)
            else:
                bad += 1
    if bad:
        report_damage(on_damage, f"{key!r}: left out {bad} damaged entries")
    return list(result), list(result.values())


def _all_durations(ids: list[Any], nanoseconds: list[Any]) -> bool:
    """Whether ``ids`` are strings and ``nanoseconds`` whole numbers >= 0, in C."""
    try:
        "".join(ids)
        # Sums of ints are ints; a float or a bool anywhere is damage.
        return not nanoseconds or (
            min(nanoseconds) >= 0
            and type(sum(nanoseconds)) is int
            and not any(map(bool.__instancecheck__, nanoseconds))
        )
    except TypeError:
        return False


def _durations_bytes(durations: Mapping[str, int]) -> bytes:
    return encode_json(
        {
            "version": DURATIONS_VERSION,
            "ids": list(durations),
            "nanoseconds": list(durations.values()),
        }
    )


def recorded_durations_from_backend(
    backend: Backend, *, on_damage: OnDamage | None = None
) -> dict[str, float]:
    """Node id -> typical duration in seconds (the median of its window).

    Reads only the small durations values; tests with no recorded run but
    imported durations (``crosscache durations --import``) are included.
    """
    durations: dict[str, float] = {}
    for index in range(BUCKETS):
        key = durations_key(index)
        data = backend.read(key)
        if data is not None:
            ids, nanoseconds = _durations_lists(data, key, on_damage)
            # Division is exact to the stored digits: s == round(s * 1e9) / 1e9.
            seconds = map(truediv, nanoseconds, repeat(1e9))
            durations.update(zip(ids, seconds, strict=True))
    return durations


def recorded_durations(cache: Cache) -> dict[str, float]:
    """:func:`recorded_durations_from_backend` of a session's cache."""
    return recorded_durations_from_backend(cache.backend)


# --- reading ----------------------------------------------------------------


def load_history_from_backend(
    backend: Backend,
    nodeids: Collection[str] | None = None,
    *,
    on_damage: OnDamage | None = None,
) -> History:
    """The whole history, or only that of ``nodeids`` (reading only their buckets).

    :param on_damage: called with a sentence naming each damaged value that
        was (partly) left out; by default damage is skipped silently.
    """
    wanted: dict[int, set[tuple[str, str]]] | None = None
    if nodeids is not None:
        wanted = {}
        for nodeid in nodeids:
            file, name = split_nodeid(nodeid)
            wanted.setdefault(bucket_of(file), set()).add((file, name))
        indices: Iterable[int] = sorted(wanted)
    else:
        indices = range(BUCKETS)
    runs = read_runs(backend, on_damage)
    tests: dict[str, TestHistory] = {}
    for index in indices:
        key = tests_key(index)
        data = backend.read(key)
        if data is None:
            continue
        bucket = Bucket.parse(data, key, on_damage)
        if wanted is None:
            chosen: Iterable[tuple[str, Mapping[str, str] | None]] = (
                (file, None) for file in bucket.files
            )
        else:
            by_file: dict[str, dict[str, str]] = {}
            for file, name in wanted[index]:
                cells = bucket.files.get(file, {}).get(name)
                if cells is not None:
                    by_file.setdefault(file, {})[name] = cells
            chosen = by_file.items()
        referenced: set[str] = set()
        for file, some in chosen:
            found = list(filter(_OUTCOMES_OF, bucket.histories(file, some)))
            tests.update(zip(map(_NODEID_OF, found), found, strict=True))
            # Most tests share one tuple of all the bucket's runs: each
            # distinct tuple is looked at once.
            shared = list(map(_RUN_IDS_OF, found))
            for run_ids in dict(zip(map(id, shared), shared, strict=True)).values():
                referenced.update(run_ids)
        _add_missing_runs(runs, bucket.columns, referenced)
    return History(runs=runs, tests=tests)


_OUTCOMES_OF = attrgetter("outcomes")
_NODEID_OF = attrgetter("nodeid")
_RUN_IDS_OF = attrgetter("run_ids")


def _add_missing_runs(
    runs: dict[str, Run], columns: Iterable[Column], referenced: Collection[str]
) -> None:
    """Add the runs the index no longer holds from what a bucket knows of them."""
    for run_id, started, revision, ci in columns:
        if run_id in referenced and run_id not in runs:
            runs[run_id] = Run(
                id=run_id,
                started=started,
                revision=revision,
                ci=ci,
                duration=0.0,
                tests=0,
                failed=0,
            )


def load_history(cache: Cache, nodeids: Collection[str] | None = None) -> History:
    """Whole history, or only these tests (cheap when few)."""
    return load_history_from_backend(cache.backend, nodeids)


# --- writing ----------------------------------------------------------------


def record_run(
    backend: Backend,
    run: Run,
    results: Mapping[str, tuple[str, float]],
    *,
    window: int = DEFAULT_WINDOW,
    collected: Collection[str] | None = None,
    want: Collection[str] = (),
    on_damage: OnDamage | None = None,
    pending: Path | None = None,
) -> History:
    """Add one session's outcomes to the history: one locked read-modify-write.

    :param results: node id -> (outcome letter, seconds) of every test that ran.
    :param window: runs kept per test (``cache_history_runs``).
    :param collected: every node id of a whole-suite collection, if the
        session made one: tests of the history not in it are forgotten
        (this reads every bucket).
    :param want: node ids whose updated histories to return, e.g. this
        session's failures (read from what was written, at no extra cost).
    :param pending: a cache directory whose runs saved past a stuck lock
        (:mod:`~pytest_crosscache.history.pending`) are added first.
    :returns: the history of the ``want`` tests, with the runs they refer to.
    :raises OSError: if the storage or its lock fails (``TimeoutError``
        when the lock stays taken); nothing is half-written per value.
    """
    with backend.lock(LOCK_KEY):
        runs = read_runs(backend, on_damage)
        if pending is not None:
            from pytest_crosscache.history import pending as waiting

            done = []
            for path, earlier, earlier_results in waiting.load(pending, on_damage):
                if earlier is not None:
                    _add_run(
                        backend, earlier, earlier_results, window, None, {}, on_damage
                    )
                    runs.setdefault(earlier.id, earlier)
                done.append(path)
        wanted: dict[int, set[tuple[str, str]]] = {}
        for nodeid in want:
            file, name = split_nodeid(nodeid)
            wanted.setdefault(bucket_of(file), set()).add((file, name))
        found, columns = _add_run(
            backend, run, results, window, collected, wanted, on_damage
        )
        runs[run.id] = run
        backend.write(RUNS_KEY, _runs_bytes(runs))
        if pending is not None:
            waiting.discard(done)
    referenced = {run_id for test in found.values() for run_id in test.run_ids}
    _add_missing_runs(runs, columns, referenced)
    return History(
        runs={run_id: runs[run_id] for run_id in referenced if run_id in runs},
        tests=found,
    )


def _add_run(
    backend: Backend,
    run: Run,
    results: Mapping[str, tuple[str, float]],
    window: int,
    collected: Collection[str] | None,
    wanted: Mapping[int, Collection[tuple[str, str]]],
    on_damage: OnDamage | None,
) -> tuple[dict[str, TestHistory], list[Column]]:
    """Write one run into its buckets (the lock held); return the ``wanted`` tests."""
    # Each test's new cell, by file: one pass over the results.
    by_file: dict[str, dict[str, str]] = {}
    for nodeid, (letter, seconds) in results.items():
        file, _, name = nodeid.partition("::")
        tests = by_file.get(file)
        if tests is None:
            tests = by_file[file] = {}
        tests[name] = letter + encode_duration(seconds)
    grouped: dict[int, dict[str, dict[str, str]]] = {}
    for file, tests in by_file.items():
        grouped.setdefault(bucket_of(file), {})[file] = tests
    indices = set(grouped) if collected is None else set(range(BUCKETS))
    column: Column = (run.id, run.started, run.revision, run.ci)
    found: dict[str, TestHistory] = {}
    columns: list[Column] = []
    for index in sorted(indices):
        key = tests_key(index)
        data = backend.read(key)
        if data is None and index not in grouped:
            continue
        bucket = Bucket.parse(data, key, on_damage)
        ran = grouped.get(index)
        if ran is not None:
            bucket.add_run(column, ran, window)
        gone = bucket.forget(collected) if collected is not None else set()
        if ran is None and not gone:
            continue
        _write_bucket(backend, index, bucket, data)
        _update_durations(
            backend,
            index,
            bucket.medians(ran or {}),
            [join_nodeid(file, name) for file, name in gone],
            on_damage,
        )
        for file, name in wanted.get(index, ()):
            history = bucket.test_history(file, name)
            if history is not None:
                found[history.nodeid] = history
                columns.extend(bucket.columns)
    return found, columns


def _write_bucket(
    backend: Backend, index: int, bucket: Bucket, before: bytes | None
) -> None:
    key = tests_key(index)
    if bucket:
        backend.write(key, bucket.to_bytes())
    elif before is not None:
        backend.delete(key)


def _update_durations(
    backend: Backend,
    index: int,
    medians: Mapping[str, int],
    gone: Collection[str],
    on_damage: OnDamage | None,
) -> None:
    key = durations_key(index)
    before = backend.read(key)
    if before is not None and medians and not gone:
        # The usual case: the same tests as last time, in the same order,
        # each with a new median.  Then the stored ids stay as they are.
        ids = encode_json(list(medians))
        if _same_ids(before, ids, len(medians)):
            nanoseconds = encode_json(list(medians.values()))
            backend.write(key, b"".join((_IDS_HEAD, ids, _NS_HEAD, nanoseconds, b"}")))
            return
    durations = dict(medians)
    # The tests that did not run keep theirs, after those that did: the
    # next run of the same tests then finds the ids in its own order.
    for nodeid, value in _parse_durations(before, key, on_damage).items():
        durations.setdefault(nodeid, value)
    for nodeid in gone:
        durations.pop(nodeid, None)
    if durations:
        backend.write(key, _durations_bytes(durations))
    elif before is not None:
        backend.delete(key)


# How _durations_bytes starts a value and its list of nanoseconds.
_IDS_HEAD = b'{"version":%d,"ids":' % DURATIONS_VERSION
_NS_HEAD = b',"nanoseconds":'


def _same_ids(stored: bytes, ids: bytes, count: int) -> bool:
    """Whether ``stored`` is a sound durations value of exactly the ids ``ids``.

    ``ids`` is the encoded list of ``count`` node ids; the stored value must
    hold them in the same order, each with a whole number of nanoseconds.
    """
    start = len(_IDS_HEAD)
    end = start + len(ids)
    if stored[:start] != _IDS_HEAD or stored[start:end] != ids:
        return False
    tail = stored[end:]
    if not tail.startswith(_NS_HEAD + b"[") or not tail.endswith(b"]}"):
        return False
    numbers = tail[len(_NS_HEAD) + 1 : -2]
    # Digits and commas only, one number per id: nothing damaged is dropped.
    return (
        bool(numbers)
        and numbers.count(b",") == count - 1
        and not numbers.translate(None, b"0123456789,")
        and b",," not in numbers
        and not numbers.startswith(b",")
        and not numbers.endswith(b",")
    )


def merge_stored(key: str, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Two stored versions of one history value, united by run id.

    For the Redis backend's outage journal: a value written locally during
    an outage and the one the server holds now.  Buckets keep, per test, as
    many runs as the larger of the default window and what either side
    held; duration summaries and the runs index are united entry by entry.
    Returns ``None`` when both are absent.
    """
    if ours is None or theirs is None:
        return ours if theirs is None else theirs
    if key == RUNS_KEY:
        runs = _runs_from(theirs, None)
        for run_id, run in _runs_from(ours, None).items():
            runs.setdefault(run_id, run)
        return _runs_bytes(runs)
    if key.startswith(f"{DURATIONS_PREFIX}/"):
        durations = _parse_durations(theirs, key, None)
        durations.update(_parse_durations(ours, key, None))
        return _durations_bytes(durations)
    if key.startswith(f"{TESTS_PREFIX}/"):
        bucket = Bucket.parse(theirs, key)
        other = Bucket.parse(ours, key)
        held = max(
            (
                len(cells) // CELL - cells.count(NOT_RUN) // CELL
                for side in (bucket, other)
                for tests in side.files.values()
                for cells in tests.values()
            ),
            default=0,
        )
        bucket.merge(other, max(DEFAULT_WINDOW, held))
        return bucket.to_bytes() if bucket else None
    return ours


def import_durations(
    backend: Backend,
    durations: Mapping[str, float],
    *,
    on_damage: OnDamage | None = None,
) -> int:
    """Store durations from elsewhere for tests with no recorded runs.

    Measured durations win: tests with a recorded history keep theirs.
    Returns how many tests got an imported duration.
    """
    grouped: dict[int, dict[str, dict[str, float]]] = {}
    for nodeid, seconds in durations.items():
        file, name = split_nodeid(nodeid)
        grouped.setdefault(bucket_of(file), {}).setdefault(file, {})[name] = seconds
    imported = 0
    with backend.lock(LOCK_KEY):
        for index, files in sorted(grouped.items()):
            bucket = Bucket.parse(
                backend.read(tests_key(index)), tests_key(index), on_damage
            )
            key = durations_key(index)
            stored = _parse_durations(backend.read(key), key, on_damage)
            for file, tests in files.items():
                measured = bucket.files.get(file, {})
                for name, seconds in tests.items():
                    if name not in measured:
                        stored[join_nodeid(file, name)] = to_nanoseconds(
                            float(f"{seconds:.4g}")
                        )
                        imported += 1
            backend.write(key, _durations_bytes(stored))
    return imported


def merge_history(
    target: Backend,
    sources: Iterable[Backend],
    *,
    window: int = DEFAULT_WINDOW,
    on_damage: OnDamage | None = None,
) -> int:
    """Unite the histories of ``sources`` into ``target``, by run id.

    Each test keeps its newest ``window`` runs.  Returns how many runs the
    target's index holds afterwards.  Merging the same source twice changes
    nothing the second time.
    """
    sources = list(sources)
    with target.lock(LOCK_KEY):
        for index in range(BUCKETS):
            key = tests_key(index)
            before = target.read(key)
            bucket = Bucket.parse(before, key, on_damage)
            dkey = durations_key(index)
            dbefore = target.read(dkey)
            durations = _parse_durations(dbefore, dkey, on_damage)
            changed = False
            for source in sources:
                data = source.read(key)
                if data is not None:
                    bucket.merge(
                        Bucket.parse(data, source.location(key), on_damage), window
                    )
                    changed = True
                ddata = source.read(dkey)
                if ddata is not None:
                    for nodeid, nanoseconds in _parse_durations(
                        ddata, source.location(dkey), on_damage
                    ).items():
                        durations.setdefault(nodeid, nanoseconds)
                    changed = True
            if not changed:
                continue
            # Measured medians over the united windows replace both sides'.
            durations.update(bucket.medians())
            _write_bucket(target, index, bucket, before)
            if durations:
                target.write(dkey, _durations_bytes(durations))
        runs = read_runs(target, on_damage)
        for source in sources:
            for run_id, run in read_runs(source, on_damage).items():
                runs.setdefault(run_id, run)
        if runs:
            target.write(RUNS_KEY, _runs_bytes(runs))
        return min(len(runs), RUNS_KEPT)


__all__ = [
    "BUCKETS",
    "DEFAULT_WINDOW",
    "DURATIONS_PREFIX",
    "HISTORY_PREFIX",
    "LOCK_KEY",
    "RUNS_KEY",
    "TESTS_PREFIX",
    "import_durations",
    "load_history",
    "load_history_from_backend",
    "merge_history",
    "record_run",
    "recorded_durations",
    "recorded_durations_from_backend",
]
