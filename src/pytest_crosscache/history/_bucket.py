"""One bucket of the test history: its columns (runs) and its cells, in memory.

See :mod:`pytest_crosscache.history.store` for the stored layout.  Each test
has a string of cells, three characters per column of its bucket: the
outcome letter (:data:`NOT_RUN` when the test did not run in that run) and
the duration in two characters (:func:`encode_duration`).
"""

from __future__ import annotations

import json
import math
import sys
from array import array
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from itertools import compress
from itertools import repeat
from operator import add
from operator import and_
from operator import contains
from operator import itemgetter
from operator import not_
from typing import Any
from typing import cast

from pytest_crosscache.history.model import TestHistory
from pytest_crosscache.history.model import is_number
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


# --- many cells at once -----------------------------------------------------
#
# Sessions of big suites handle tens of thousands of tests' cells: what
# follows works on all cells of a file at once, with the loops in C.  A
# duration code's two ASCII characters make one 16-bit number (first
# character high), which sorts as the code does.

#: Seconds of each 16-bit code number; 0.0 for what is no code.
_NUMBER_SECONDS = [0.0] * 65536
for _text, _seconds in _SECONDS.items():
    _NUMBER_SECONDS[ord(_text[0]) << 8 | ord(_text[1])] = _seconds
del _text, _seconds


def to_nanoseconds(seconds: float) -> int:
    """Whole nanoseconds of ``seconds``: what the durations values store.

    Exact for the durations the history gives (four significant digits, a
    microsecond or more): ``to_nanoseconds(s) / 1e9 == s``.
    """
    return round(seconds * 1e9)


#: Nanoseconds of each 16-bit code number.
_NUMBER_NS = list(map(to_nanoseconds, _NUMBER_SECONDS))


class _Midpoints(dict[tuple[int, int], int]):
    """Nanoseconds of the median of two code numbers, as :func:`_median_seconds`."""

    def __missing__(self, pair: tuple[int, int]) -> int:
        below, value = _NUMBER_SECONDS[pair[0]], _NUMBER_SECONDS[pair[1]]
        middle = to_nanoseconds(float(f"{(value + below) / 2:.4g}"))
        if len(self) < 1 << 16:  # bounded: a long session meets few pairs
            self[pair] = middle
        return middle


_MIDPOINTS = _Midpoints()


def _code_numbers(joined: str) -> array[int]:
    """The duration code numbers of cells joined into one ASCII string."""
    data = joined.encode("ascii")
    pairs = bytearray(2 * (len(data) // CELL))
    # Little-endian 16-bit numbers: the second character is the low byte.
    pairs[0::2] = data[2::CELL]
    pairs[1::2] = data[1::CELL]
    numbers = array("H")
    numbers.frombytes(pairs)
    if sys.byteorder == "big":
        numbers.byteswap()
    return numbers


def _uniform(cells: Sequence[str]) -> tuple[str, int] | None:
    """``(joined, columns)`` when ``cells`` are ASCII, all of one width, recorded."""
    width = len(cells[0])
    joined = "".join(cells)
    if (
        width == 0
        or width % CELL
        or len(joined) != width * len(cells)
        or NOT_RUN in joined
        or not joined.isascii()
        or set(map(len, cells)) != {width}
    ):
        return None
    return joined, width // CELL


#: An array type code of 32-bit numbers.
_UINT32 = next(code for code in "ILH" if array(code).itemsize == 4)
#: Tests whose windows one sort handles (their index takes 16 bits).
_SORTED_AT_ONCE = 1 << 16


def medians_of(cells: Sequence[str]) -> list[int | None]:
    """:func:`_median_seconds` of each of ``cells`` in nanoseconds.

    ``None`` for cells with no recorded run.  Cells of one bucket have one
    width; those of tests that ran in every column are done together.
    """
    if not cells:
        return []
    gaps = list(map(contains, cells, repeat(NOT_RUN)))
    if any(gaps):
        # Tests that missed runs: those one by one, the others together.
        full = iter(medians_of(list(compress(cells, map(not_, gaps)))))
        return [
            _one_median(one) if gap else next(full)
            for one, gap in zip(cells, gaps, strict=True)
        ]
    uniform = _uniform(cells)
    if uniform is None:
        return list(map(_one_median, cells))
    joined, count = uniform
    found: list[int | None] = []
    step = _SORTED_AT_ONCE * count * CELL
    for start in range(0, len(joined), step):
        found.extend(_sorted_medians(joined[start : start + step], count))
    return found


def _one_median(cells: str) -> int | None:
    median = _median_seconds(cells)
    return None if median is None else to_nanoseconds(median)


#: Per number of columns: 256 tests' index bytes (each repeated per column).
_LOW_INDEX: dict[int, bytes] = {}


def _sorted_medians(joined: str, count: int) -> list[int]:
    """Medians of up to :data:`_SORTED_AT_ONCE` tests, ``count`` runs each, all run.

    One sort of numbers that hold each test's index above its code: every
    test's codes come out together and in order, and the loops run in C.
    """
    total = len(joined) // CELL
    tests = total // count
    data = joined.encode("ascii")
    low = _LOW_INDEX.get(count)
    if low is None:
        low = _LOW_INDEX[count] = b"".join(bytes([i]) * count for i in range(256))
    high = b"".join(bytes([i]) * (256 * count) for i in range(tests // 256 + 1))
    # Little-endian 32-bit numbers: test index above, code below.
    packed = bytearray(4 * total)
    packed[0::4] = data[2::CELL]
    packed[1::4] = data[1::CELL]
    packed[2::4] = (low * (tests // 256 + 1))[:total]
    packed[3::4] = high[:total]
    numbers = array(_UINT32)
    numbers.frombytes(packed)
    if sys.byteorder == "big":
        numbers.byteswap()
    ordered = sorted(numbers)
    middle = count // 2
    code = repeat(0xFFFF)
    if count % 2:
        return list(
            map(_NUMBER_NS.__getitem__, map(and_, ordered[middle::count], code))
        )
    below = map(and_, ordered[middle - 1 :: count], code)
    above = map(and_, ordered[middle::count], code)
    return list(map(_MIDPOINTS.__getitem__, zip(below, above, strict=True)))


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
        cells: Mapping[str, Mapping[str, str]],
        window: int,
    ) -> None:
        """Add one run's outcomes: ``cells`` is file -> name -> its new cell.

        A cell is the outcome letter and :func:`encode_duration` of the seconds.
        """
        self._all_ids = None
        if any(existing[0] == column[0] for existing in self.columns):
            # The same run recorded twice (it cannot, but a union by run id
            # must not count it twice): merge instead.
            self.merge(Bucket([column], _copied(cells)), window)
            return
        if self.columns and (column[1], column[0]) < (
            self.columns[-1][1],
            self.columns[-1][0],
        ):
            # A run that started before the newest column (clocks of
            # different machines): keep columns in time order.
            self.merge(Bucket([column], _copied(cells)), window)
            self._trim(window, cap=True)
            return
        files = self.files
        count = len(self.columns)
        # The steady state of a suite run in full: every file's window is
        # full, so the new column pushes the oldest out.  Then each test's
        # cells lose their oldest cell as they gain the new one, in one pass.
        shift = count == window and self._oldest_goes(cells)
        kept = itemgetter(slice(CELL if shift else 0, None))
        # Whole files at a time, the loops in C: this runs for every test
        # of the touched buckets at the end of every session.
        for file, tests in files.items():
            before = map(kept, tests.values()) if shift else tests.values()
            new = cells.get(file)
            if new is None:
                added = map(add, before, repeat(_EMPTY_CELL))
            else:
                added = map(add, before, map(new.get, tests, repeat(_EMPTY_CELL)))
            files[file] = dict(zip(tests, added, strict=True))
        filler = _EMPTY_CELL * (count - 1 if shift else count)
        for file, new in cells.items():
            known = files.get(file)
            if known is None:
                files[file] = dict(
                    zip(new, map(filler.__add__, new.values()), strict=True)
                )
            elif not new.keys() <= known.keys():
                for name, cell in new.items():
                    if name not in known:
                        known[name] = filler + cell
        if shift:
            del self.columns[0]
        self.columns.append(column)
        self._trim(window, cap=True)

    def _oldest_goes(self, cells: Mapping[str, Mapping[str, str]]) -> bool:
        """Whether the run of ``cells`` empties a full window's oldest column.

        True when each file either did not run in that column, or ran in
        every column and runs again in full (each of its tests then has one
        run too many and loses its oldest); no test then loses its last run.
        """
        if not self.columns:
            return False
        width = CELL * len(self.columns)
        for file, tests in self.files.items():
            joined = "".join(tests.values())
            full = NOT_RUN not in joined and cells.get(file, {}).keys() >= tests.keys()
            if not full and joined[::width].strip(NOT_RUN):
                return False
        return True

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
            if "" not in tests and all(
                map(keep.__contains__, map(f"{file}::".__add__, tests))
            ):
                continue  # the usual case, checked in C
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
        """Keep each test's newest ``window`` runs; drop the columns left empty.

        Leading columns no test ran in are dropped, then the oldest ones
        beyond :data:`MAX_COLUMNS_PER_WINDOW` windows when ``cap``; tests
        that ran in none of the columns left are forgotten.
        """
        files = self.files
        count = len(self.columns)
        if count > window:
            for file, tests in files.items():
                if count == window + 1 and NOT_RUN not in "".join(tests.values()):
                    # The common case: every test of the file ran in every
                    # run, one run more than the window.
                    files[file] = dict(
                        zip(
                            tests,
                            map(
                                _EMPTY_CELL.__add__,
                                map(itemgetter(slice(CELL, None)), tests.values()),
                            ),
                            strict=True,
                        )
                    )
                elif count - _fewest_gaps(tests.values()) > window:
                    # Some test of the file holds more runs than the window
                    # (the file's tests that did not run, as in an --lf
                    # run, usually hold no more than before: skipped).
                    files[file] = dict(
                        zip(
                            tests,
                            map(_keep_newest, tests.values(), repeat(window)),
                            strict=True,
                        )
                    )
        # Each file's cells joined: a step of the cells' width through it
        # visits one column of every test.
        width = CELL * count
        joined = ["".join(tests.values()) for tests in files.values()]
        drop = 0
        while drop < count and all(
            not cells[CELL * drop :: width].strip(NOT_RUN) for cells in joined
        ):
            drop += 1
        if cap:
            drop = max(drop, count - MAX_COLUMNS_PER_WINDOW * window)
        if drop:
            self._drop_first(drop)

    def _drop_first(self, drop: int) -> None:
        """Drop the ``drop`` oldest columns, and the tests left with no run."""
        del self.columns[:drop]
        cut = itemgetter(slice(CELL * drop, None))
        for file in list(self.files):
            tests = self.files[file]
            kept = dict(zip(tests, map(cut, tests.values()), strict=True))
            if not all(map(str.strip, kept.values(), repeat(NOT_RUN))):
                kept = {
                    name: cells for name, cells in kept.items() if cells.strip(NOT_RUN)
                }
            if kept:
                self.files[file] = kept
            else:
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
        return self.histories(file, {name: cells})[0]

    def histories(
        self, file: str, tests: Mapping[str, str] | None = None
    ) -> list[TestHistory]:
        """The recorded runs of ``tests`` (name -> cells; all of ``file``'s by default).

        Tests with no recorded run are included, with empty outcomes.
        """
        if tests is None:
            tests = self.files.get(file) or {}
        if not tests:
            return []
        names = list(tests)
        ids = list(map(f"{file}::".__add__, names))
        if "" in tests:
            ids[names.index("")] = file
        cells = list(tests.values())
        uniform = _uniform(cells)
        if uniform is not None and OUTCOMES.issuperset(uniform[0][::CELL]):
            joined, count = uniform
            run_ids = self._run_ids()
            if len(run_ids) == count:
                # Ran in every run of the bucket, as after full runs: each
                # test's outcomes and durations are slices of one string and
                # one list, cut and made into records in C.
                outcomes = joined[::CELL]
                seconds = list(map(_NUMBER_SECONDS.__getitem__, _code_numbers(joined)))
                total = len(outcomes)
                spans = list(
                    map(slice, range(0, total, count), range(count, total + 1, count))
                )
                return list(
                    map(
                        TestHistory,
                        ids,
                        map(outcomes.__getitem__, spans),
                        map(tuple, map(seconds.__getitem__, spans)),
                        repeat(run_ids),
                    )
                )
        return list(map(self._one_history, ids, cells))

    def _one_history(self, nodeid: str, cells: str) -> TestHistory:
        outcomes = cells[::CELL]
        codes = map(add, cells[1::CELL], cells[2::CELL])
        if OUTCOMES.issuperset(outcomes) and len(outcomes) == len(self.columns):
            run_ids = self._run_ids()
            durations = tuple(map(_SECONDS.get, codes, repeat(0.0)))
        else:
            kept = [
                (letter, code, column[0])
                for letter, code, column in zip(
                    outcomes, codes, self.columns, strict=False
                )
                if letter in OUTCOMES
            ]
            outcomes = "".join(letter for letter, _, _ in kept)
            run_ids = tuple(run_id for _, _, run_id in kept)
            durations = tuple(_SECONDS.get(code, 0.0) for _, code, _ in kept)
        return TestHistory(
            nodeid=nodeid,
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
        self, names: Mapping[str, Iterable[str]] | None = None
    ) -> dict[str, int]:
        """Median nanoseconds of the tests ``names`` gives by file (all by default).

        By node id; tests with no recorded run are left out.
        """
        ids: list[str] = []
        cells: list[str] = []
        for file, chosen in (names if names is not None else self.files).items():
            tests = self.files.get(file)
            if not tests:
                continue
            if names is None or chosen is tests:
                picked = list(tests)
                cells.extend(tests.values())
            else:
                picked = [name for name in chosen if name in tests]
                cells.extend(map(tests.__getitem__, picked))
            start = len(ids)
            ids.extend(map(f"{file}::".__add__, picked))
            if "" in tests and "" in picked:
                ids[start + picked.index("")] = file
        found = dict(zip(ids, medians_of(cells), strict=True))
        if None in found.values():
            return {nodeid: m for nodeid, m in found.items() if m is not None}
        return cast("dict[str, int]", found)


def _copied(cells: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    return {file: dict(tests) for file, tests in cells.items()}


def _all_cells(tests: dict[str, Any], width: int) -> bool:
    """Whether every value of ``tests`` is a string of ``width`` characters."""
    # Both checks run in C: this is the bulk of reading a bucket.
    try:
        "".join(tests.values())
    except TypeError:
        return False
    return set(map(len, tests.values())) <= {width}


def _fewest_gaps(cells: Iterable[str]) -> int:
    """The fewest runs any of ``cells`` missed (counted in C)."""
    return min(map(str.count, cells, repeat(NOT_RUN)), default=0) // CELL


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
