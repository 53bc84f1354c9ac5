"""One bucket of the test history: its columns (runs) and its cells, in memory.

See :mod:`pytest_crosscache.history.store` for the stored layout.  Each test
has a string of cells, three characters per column of its bucket: the
outcome letter (:data:`NOT_RUN` when the test did not run in that run) and
the duration in two characters (:func:`encode_duration`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from itertools import repeat
from operator import add
from typing import Any

from pytest_crosscache.history.model import TestHistory
from pytest_crosscache.history.outcomes import OUTCOMES

FORMAT_VERSION = 1
#: A bucket keeps at most this many windows' worth of columns: a test that
#: ran in none of them loses its oldest outcomes first.
MAX_COLUMNS_PER_WINDOW = 3

NOT_RUN = "."
CELL = 3
_EMPTY_CELL = NOT_RUN * CELL

#: Reports a damaged stored value, by a sentence naming its key.
OnDamage = Callable[[str], None]

# --- durations in two characters -------------------------------------------

#: 64 characters in ASCII order, so codes sort as the durations they stand for.
ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_LEVELS = len(ALPHABET) ** 2
#: Code 0 is "a microsecond or less"; the top code a million seconds.
_FLOOR = 1e-6
_STEP = math.log(1e12) / (_LEVELS - 1)


_TOP = _LEVELS - 1
_LOG_FLOOR = math.log(_FLOOR)
_CODES = [ALPHABET[code >> 6] + ALPHABET[code & 63] for code in range(_LEVELS)]
#: Seconds of each code, to four significant digits (within the 0.35%).
_SECONDS = {
    text: 0.0 if code == 0 else float(f"{_FLOOR * math.exp(code * _STEP):.4g}")
    for code, text in enumerate(_CODES)
}
_FILLER_CODE = NOT_RUN * 2


def encode_duration(seconds: float) -> str:
    """Seconds as two characters, within 0.35% (1 us to 11 days, clamped)."""
    # Called once per test and session: kept to a few operations.
    if seconds > _FLOOR:  # False for NaN and negative numbers
        if seconds >= 1e6:
            return _CODES[_TOP]
        code = int((math.log(seconds) - _LOG_FLOOR) / _STEP + 0.5)
        return _CODES[code if code > 0 else 1]
    return _CODES[0]


def decode_duration(code: str) -> float:
    """The seconds :func:`encode_duration` encoded as ``code`` (0.0 if invalid)."""
    return _SECONDS.get(code, 0.0)


def _median_seconds(cells: str) -> float | None:
    """The median duration of the runs recorded in ``cells``."""
    # The codes sort as the durations do, so sort them, not numbers.
    codes = list(map(add, cells[1::CELL], cells[2::CELL]))
    if NOT_RUN in cells:
        codes = [code for code in codes if code != _FILLER_CODE]
        if not codes:
            return None
    codes.sort()
    middle = len(codes) // 2
    value = _SECONDS.get(codes[middle], 0.0)
    if len(codes) % 2 == 0:
        below = _SECONDS.get(codes[middle - 1], 0.0)
        value = float(f"{(value + below) / 2:.4g}")
    return value


# --- helpers ----------------------------------------------------------------


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """``(file, name)`` of a node id; ``name`` is empty for ``file`` alone."""
    file, _, name = nodeid.partition("::")
    return file, name


def join_nodeid(file: str, name: str) -> str:
    return f"{file}::{name}" if name else file


def encode_json(value: object) -> bytes:
    # ASCII with escapes: node ids may hold lone surrogates (undecodable
    # file names), which UTF-8 cannot encode; compact, unlike other values,
    # because the history is the biggest thing in a cache.
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def decode_json(data: bytes | None, key: str, on_damage: OnDamage | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        report_damage(on_damage, f"{key!r} is not valid JSON")
        return None


def report_damage(on_damage: OnDamage | None, message: str) -> None:
    if on_damage is not None:
        on_damage(message)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- buckets ----------------------------------------------------------------

#: A bucket column: (run id, started, revision, ci).
Column = tuple[str, float, "str | None", bool]


class Bucket:
    """One bucket's columns and cells, decoded (see the module docstring)."""

    def __init__(self, columns: list[Column], files: dict[str, dict[str, str]]) -> None:
        self.columns = columns
        self.files = files
        self._all_ids: tuple[str, ...] | None = None

    @classmethod
    def empty(cls) -> Bucket:
        return cls([], {})

    @classmethod
    def parse(
        cls, data: bytes | None, key: str, on_damage: OnDamage | None = None
    ) -> Bucket:
        """Decode stored bytes; damaged parts are reported and left out."""
        stored = decode_json(data, key, on_damage)
        if stored is None:
            return cls.empty()
        raw_columns = stored.get("runs") if isinstance(stored, dict) else None
        raw_files = stored.get("files") if isinstance(stored, dict) else None
        if not isinstance(raw_columns, list) or not isinstance(raw_files, dict):
            report_damage(on_damage, f"{key!r} is not a history bucket")
            return cls.empty()
        columns: list[Column] = []
        for column in raw_columns:
            if (
                not isinstance(column, list)
                or len(column) != 4
                or not isinstance(column[0], str)
                or not is_number(column[1])
                or not (column[2] is None or isinstance(column[2], str))
            ):
                report_damage(on_damage, f"{key!r}: a column is damaged")
                return cls.empty()
            columns.append((column[0], float(column[1]), column[2], bool(column[3])))
        width = CELL * len(columns)
        files: dict[str, dict[str, str]] = {}
        bad = 0
        for file, tests in raw_files.items():
            if not isinstance(tests, dict):
                bad += 1
                continue
            if _all_cells(tests, width):
                kept = tests
            else:
                kept = {
                    name: cells
                    for name, cells in tests.items()
                    if isinstance(cells, str) and len(cells) == width
                }
                bad += len(tests) - len(kept)
            if kept:
                files[file] = kept
        if bad:
            report_damage(on_damage, f"{key!r}: left out {bad} damaged entries")
        return cls(columns, files)

    def to_bytes(self) -> bytes:
        return encode_json(
            {
                "version": FORMAT_VERSION,
                "runs": [list(column) for column in self.columns],
                "files": self.files,
            }
        )

    def __bool__(self) -> bool:
        return bool(self.files)

    def add_run(
        self,
        column: Column,
        results: Mapping[str, Mapping[str, tuple[str, float]]],
        window: int,
    ) -> None:
        """Add one run's outcomes: ``results`` is file -> name -> (letter, seconds)."""
        self._all_ids = None
        if any(existing[0] == column[0] for existing in self.columns):
            # The same run recorded twice (it cannot, but a union by run id
            # must not count it twice): merge instead.
            self.merge(Bucket._of_run(column, results), window)
            return
        if self.columns and (column[1], column[0]) < (
            self.columns[-1][1],
            self.columns[-1][0],
        ):
            # A run that started before the newest column (clocks of
            # different machines): keep columns in time order.
            self.merge(Bucket._of_run(column, results), window)
            self._trim(window, cap=True)
            return
        width = CELL * len(self.columns)
        for file, tests in self.files.items():
            ran = results.get(file)
            if ran is None:
                for name in tests:
                    tests[name] += _EMPTY_CELL
                continue
            for name in tests:
                result = ran.get(name)
                tests[name] += (
                    _EMPTY_CELL
                    if result is None
                    else result[0] + encode_duration(result[1])
                )
        for file, ran in results.items():
            tests = self.files.setdefault(file, {})
            for name, (letter, seconds) in ran.items():
                if name not in tests:
                    tests[name] = NOT_RUN * width + letter + encode_duration(seconds)
        self.columns.append(column)
        self._trim(window, cap=True)

    @classmethod
    def _of_run(
        cls, column: Column, results: Mapping[str, Mapping[str, tuple[str, float]]]
    ) -> Bucket:
        return cls(
            [column],
            {
                file: {
                    name: letter + encode_duration(seconds)
                    for name, (letter, seconds) in ran.items()
                }
                for file, ran in results.items()
            },
        )

    def merge(self, other: Bucket, window: int) -> None:
        """Unite ``other`` into this bucket, by run id; nothing counts twice.

        Each test then keeps its newest ``window`` runs.
        """
        self._all_ids = None
        by_id = {column[0]: column for column in self.columns}
        for column in other.columns:
            by_id.setdefault(column[0], column)
        columns = sorted(by_id.values(), key=lambda column: (column[1], column[0]))
        position = {column[0]: i for i, column in enumerate(columns)}
        width = len(columns)
        mine = [position[column[0]] for column in self.columns]
        theirs = [position[column[0]] for column in other.columns]
        files: dict[str, dict[str, str]] = {}
        for file in self.files.keys() | other.files.keys():
            own = self.files.get(file, {})
            their = other.files.get(file, {})
            merged = files[file] = {}
            for name in own.keys() | their.keys():
                cells = [_EMPTY_CELL] * width
                for source, places in (
                    (their.get(name), theirs),
                    (own.get(name), mine),
                ):
                    if source is None:
                        continue
                    for i, place in enumerate(places):
                        cell = source[CELL * i : CELL * i + CELL]
                        if cell[0] != NOT_RUN:
                            cells[place] = cell
                merged[name] = _keep_newest("".join(cells), window)
        self.columns = columns
        self.files = files
        self._drop_empty_columns()

    def forget(self, keep: Collection[str]) -> set[tuple[str, str]]:
        """Drop the tests whose node ids are not in ``keep``; return them."""
        self._all_ids = None
        gone: set[tuple[str, str]] = set()
        for file in list(self.files):
            tests = self.files[file]
            for name in list(tests):
                if join_nodeid(file, name) not in keep:
                    del tests[name]
                    gone.add((file, name))
            if not tests:
                del self.files[file]
        if gone:
            self._drop_empty_columns()
        return gone

    def _trim(self, window: int, *, cap: bool) -> None:
        count = len(self.columns)
        if count > window:
            for tests in self.files.values():
                for name, cells in tests.items():
                    excess = count - cells.count(NOT_RUN) // CELL - window
                    if excess == 1 and cells[0] != NOT_RUN:
                        # The common case: a full window, one run more.
                        tests[name] = _EMPTY_CELL + cells[CELL:]
                    elif excess > 0:
                        tests[name] = _keep_newest(cells, window)
        # Usually only the oldest columns empty out: look there, not at all.
        while self.columns and all(
            cells[0] == NOT_RUN
            for tests in self.files.values()
            for cells in tests.values()
        ):
            self._drop_first()
        if cap:
            while len(self.columns) > MAX_COLUMNS_PER_WINDOW * window:
                self._drop_first()

    def _drop_first(self) -> None:
        del self.columns[0]
        for file in list(self.files):
            tests = self.files[file]
            for name in list(tests):
                cells = tests[name][CELL:]
                if cells.count(NOT_RUN) == len(cells):
                    del tests[name]
                else:
                    tests[name] = cells
            if not tests:
                del self.files[file]

    def _drop_empty_columns(self) -> None:
        used = [False] * len(self.columns)
        for tests in self.files.values():
            for cells in tests.values():
                for i in range(len(used)):
                    if cells[CELL * i] != NOT_RUN:
                        used[i] = True
        if all(used):
            return
        self.columns = [
            column for column, kept in zip(self.columns, used, strict=True) if kept
        ]
        for tests in self.files.values():
            for name, cells in tests.items():
                tests[name] = "".join(
                    cells[CELL * i : CELL * i + CELL]
                    for i, kept in enumerate(used)
                    if kept
                )

    def test_history(self, file: str, name: str) -> TestHistory | None:
        cells = self.files.get(file, {}).get(name)
        if cells is None:
            return None
        outcomes = cells[::CELL]
        codes = map(add, cells[1::CELL], cells[2::CELL])
        if OUTCOMES.issuperset(outcomes):
            # Ran in every run of the bucket, as after full runs: all in C.
            run_ids = self._run_ids()
            durations = tuple(map(_SECONDS.get, codes, repeat(0.0)))
        else:
            kept = [
                (letter, code, column[0])
                for letter, code, column in zip(
                    outcomes, codes, self.columns, strict=True
                )
                if letter in OUTCOMES
            ]
            outcomes = "".join(letter for letter, _, _ in kept)
            run_ids = tuple(run_id for _, _, run_id in kept)
            durations = tuple(_SECONDS.get(code, 0.0) for _, code, _ in kept)
        return TestHistory(
            nodeid=join_nodeid(file, name),
            outcomes=outcomes,
            durations=durations,
            run_ids=run_ids,
        )

    def _run_ids(self) -> tuple[str, ...]:
        # One tuple shared by all the tests of the bucket that use it.
        if self._all_ids is None or len(self._all_ids) != len(self.columns):
            self._all_ids = tuple(column[0] for column in self.columns)
        return self._all_ids

    def medians(
        self, only: Iterable[tuple[str, str]] | None = None
    ) -> dict[str, dict[str, float]]:
        """Median seconds of the tests ``only`` names (all by default), by file."""
        result: dict[str, dict[str, float]] = {}
        if only is None:
            for file, tests in self.files.items():
                found = result[file] = {}
                for name, cells in tests.items():
                    median = _median_seconds(cells)
                    if median is not None:
                        found[name] = median
            return result
        for file, name in only:
            stored = self.files.get(file, {}).get(name)
            if stored is None:
                continue
            median = _median_seconds(stored)
            if median is not None:
                result.setdefault(file, {})[name] = median
        return result


def _all_cells(tests: dict[str, Any], width: int) -> bool:
    """Whether every value of ``tests`` is a string of ``width`` characters."""
    # Both checks run in C: this is the bulk of reading a bucket.
    try:
        "".join(tests.values())
    except TypeError:
        return False
    return set(map(len, tests.values())) <= {width}


def _keep_newest(cells: str, window: int) -> str:
    """``cells`` with all but the newest ``window`` recorded runs blanked."""
    excess = len(cells) // CELL - cells.count(NOT_RUN) // CELL - window
    if excess <= 0:
        return cells
    parts = [cells[i : i + CELL] for i in range(0, len(cells), CELL)]
    for i, cell in enumerate(parts):
        if excess <= 0:
            break
        if cell[0] != NOT_RUN:
            parts[i] = _EMPTY_CELL
            excess -= 1
    return "".join(parts)
