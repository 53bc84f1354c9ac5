"""History buckets against a plain model of what they must hold.

The bucket code works on whole files of cells at once (for speed); the
model here does the same one test and one run at a time, as the stored
layout defines it, and every sequence of runs must give the same cells,
histories and medians.
"""

from __future__ import annotations

import statistics

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pytest_crosscache.history import _bucket
from pytest_crosscache.history._bucket import CELL
from pytest_crosscache.history._bucket import MAX_COLUMNS_PER_WINDOW
from pytest_crosscache.history._bucket import Bucket
from pytest_crosscache.history._bucket import encode_duration
from pytest_crosscache.history._bucket import medians_of

TESTS = [("a.py", "x"), ("a.py", "y"), ("a.py", ""), ("b.py", "z"), ("b.py", "w")]
EMPTY = "..."


class Model:
    """Columns and per-test cells (``None`` = did not run), one step at a time."""

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.cells: dict[tuple[str, str], list[str | None]] = {}

    def add_run(self, run_id: str, ran: dict[tuple[str, str], str], window: int):
        for test, cells in self.cells.items():
            cells.append(ran.get(test))
        for test, cell in ran.items():
            if test not in self.cells:
                self.cells[test] = [None] * len(self.columns) + [cell]
        self.columns.append(run_id)
        for cells in self.cells.values():
            recorded = [i for i, cell in enumerate(cells) if cell is not None]
            for i in recorded[: max(0, len(recorded) - window)]:
                cells[i] = None
        drop = 0
        while drop < len(self.columns) and all(
            cells[drop] is None for cells in self.cells.values()
        ):
            drop += 1
        drop = max(drop, len(self.columns) - MAX_COLUMNS_PER_WINDOW * window)
        if drop:
            del self.columns[:drop]
            for test in list(self.cells):
                self.cells[test] = self.cells[test][drop:]
                if all(cell is None for cell in self.cells[test]):
                    del self.cells[test]

    def rendered(self) -> dict[str, dict[str, str]]:
        files: dict[str, dict[str, str]] = {}
        for (file, name), cells in self.cells.items():
            files.setdefault(file, {})[name] = "".join(c or EMPTY for c in cells)
        return files


def median_ns(cells: str) -> int | None:
    """The median the durations values hold, computed the plain way."""
    codes = sorted(
        cells[i + 1 : i + CELL] for i in range(0, len(cells), CELL) if cells[i] != "."
    )
    if not codes:
        return None
    seconds = [_bucket.decode_duration(code) for code in codes]
    middle = len(seconds) // 2
    value = seconds[middle]
    if len(seconds) % 2 == 0:
        value = float(f"{statistics.fmean(seconds[middle - 1 : middle + 1]):.4g}")
    return round(value * 1e9)


runs_strategy = st.lists(
    st.dictionaries(
        st.sampled_from(TESTS),
        st.tuples(
            st.sampled_from("PFESxXR"),
            st.floats(min_value=0.0, max_value=50.0, allow_nan=False),
        ),
        min_size=1,
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=150, deadline=None)
@given(runs=runs_strategy, window=st.integers(min_value=1, max_value=4))
def test_buckets_hold_what_the_model_holds(runs, window) -> None:
    bucket = Bucket.empty()
    model = Model()
    for number, ran in enumerate(runs):
        cells = {test: letter + encode_duration(s) for test, (letter, s) in ran.items()}
        by_file: dict[str, dict[str, str]] = {}
        for (file, name), cell in cells.items():
            by_file.setdefault(file, {})[name] = cell
        run_id = f"r{number:02d}"
        bucket.add_run((run_id, float(number), None, False), by_file, window)
        model.add_run(run_id, cells, window)
        assert [column[0] for column in bucket.columns] == model.columns
        assert bucket.files == model.rendered()
        assert bucket.to_bytes() == Bucket.parse(bucket.to_bytes(), "k").to_bytes()
    expected = {
        (f"{file}::{name}" if name else file): median
        for file, tests in model.rendered().items()
        for name, cells in tests.items()
        if (median := median_ns(cells)) is not None
    }
    assert bucket.medians() == expected
    for file, tests in bucket.files.items():
        for history in bucket.histories(file):
            name = history.nodeid.partition("::")[2]
            cells = tests[name]
            kept = [i for i in range(0, len(cells), CELL) if cells[i] != "."]
            assert history.outcomes == "".join(cells[i] for i in kept)
            assert history.run_ids == tuple(model.columns[i // CELL] for i in kept)
            assert history.durations == tuple(
                _bucket.decode_duration(cells[i + 1 : i + CELL]) for i in kept
            )


@given(
    st.lists(
        st.lists(st.floats(min_value=0.0, max_value=1e7, allow_nan=False), min_size=1),
        min_size=1,
        max_size=30,
    )
)
def test_medians_of_full_windows_match_one_by_one(windows) -> None:
    # One width per call, as in a bucket: pad the shorter windows with gaps.
    width = max(map(len, windows))
    cells = [
        "".join("P" + encode_duration(s) for s in seconds)
        + EMPTY * (width - len(seconds))
        for seconds in windows
    ]
    assert medians_of(cells) == [median_ns(one) for one in cells]


def test_damaged_cells_get_a_median_without_the_fast_path() -> None:
    cells = ["P0AP0B", "P\u00e90P0C", "......"]
    assert medians_of(cells) == [median_ns(cells[0]), median_ns(cells[1]), None]
