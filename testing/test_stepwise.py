"""``--sw`` / ``--sw-skip`` / ``--sw-reset`` and the ``cache/stepwise`` record."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

STEPWISE = Path("v", "cache", "stepwise")

# Whether a test passes depends on a marker file, not on its source, so a
# scenario can "fix" a test without rewriting (and re-importing) the module.
FIVE_TESTS = """
    import os

    def test_one():
        pass

    def test_two():
        assert os.path.exists("fixed_two")

    def test_three():
        pass

    def test_four():
        assert os.path.exists("fixed_four")

    def test_five():
        pass
"""


def fix(pytester: pytest.Pytester, name: str) -> None:
    pytester.path.joinpath(f"fixed_{name}").touch()


RESULT_LINE = re.compile(
    r"^[^: ]+::(\S+) (?:PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b"
)


def ran(lines: list[str]) -> list[str]:
    """Names of the tests a ``-v`` run executed, in order."""
    return [match[1] for match in map(RESULT_LINE.match, lines) if match]


def stepwise_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("stepwise:")]


def stored(cachedir: Path) -> object:
    return json.loads((cachedir / STEPWISE).read_text(encoding="utf-8"))


@pytest.fixture
def five(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_five=FIVE_TESTS)
    return pytester


class TestScenarios:
    def test_fail_fix_rerun(self, twin, five) -> None:
        lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines) == [
            "stepwise: no previously failed tests, not skipping."
        ]
        assert ran(lines) == ["test_one", "test_two"]
        assert (
            "Interrupted: Test failed, continuing from this test next run."
            in " ".join(lines)
        )

        lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines) == [
            "stepwise: skipping 1 already passed items (cache from AGE ago,"
            " use --sw-reset to discard)."
        ]
        assert ran(lines) == ["test_two"]

        fix(five, "two")
        lines = twin.check("-v", "--sw")
        assert ran(lines) == ["test_two", "test_three", "test_four"]

        lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines)[0].startswith(
            "stepwise: skipping 3 already passed items"
        )
        assert ran(lines) == ["test_four"]

        fix(five, "four")
        lines = twin.check("-v", "--sw")
        assert ran(lines) == ["test_four", "test_five"]

        lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines) == [
            "stepwise: no previously failed tests, not skipping."
        ]
        assert ran(lines) == [
            "test_one",
            "test_two",
            "test_three",
            "test_four",
            "test_five",
        ]

    @pytest.mark.parametrize(
        ("stepwise", "skip", "reset"),
        [
            ("--sw", "--sw-skip", "--sw-reset"),
            ("--stepwise", "--stepwise-skip", "--stepwise-reset"),
        ],
    )
    def test_skip_and_reset(
        self, twin, five, stepwise: str, skip: str, reset: str
    ) -> None:
        # The first failure is forgiven, the second stops the session.
        lines = twin.check("-v", skip)
        assert ran(lines) == ["test_one", "test_two", "test_three", "test_four"]

        lines = twin.check("-v", stepwise)
        assert stepwise_lines(lines)[0].startswith(
            "stepwise: skipping 3 already passed items"
        )
        assert ran(lines) == ["test_four"]

        lines = twin.check("-v", reset)
        assert stepwise_lines(lines) == ["stepwise: resetting state, not skipping."]
        assert ran(lines) == ["test_one", "test_two"]

        lines = twin.check("-v", stepwise)
        assert ran(lines) == ["test_two"]

    def test_skip_forgets_the_failure_it_forgives(self, twin, five) -> None:
        twin.check("-v", "--sw")
        lines = twin.check("-v", "--sw-skip")
        assert ran(lines) == ["test_two", "test_three", "test_four"]
        lines = twin.check("-v", "--sw")
        assert ran(lines) == ["test_four"]

    def test_all_pass(self, twin, five) -> None:
        fix(five, "two")
        fix(five, "four")
        lines = twin.check("-v", "--sw")
        assert ran(lines) == [
            "test_one",
            "test_two",
            "test_three",
            "test_four",
            "test_five",
        ]
        lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines) == [
            "stepwise: no previously failed tests, not skipping."
        ]

    def test_test_count_changed(self, twin, five) -> None:
        twin.check("-v", "--sw")
        five.makepyfile(test_six="def test_six(): pass")
        lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines) == [
            "stepwise: test count changed, not skipping (now 6 tests, previously 5)."
        ]
        assert ran(lines) == ["test_one", "test_two"]

    def test_deselection(self, twin, five) -> None:
        twin.check("-v", "--sw")
        lines = twin.check("-v", "--sw", "--deselect", "test_five.py::test_five")
        assert ran(lines) == ["test_two"]

    def test_previously_failed_test_not_found(self, twin, five) -> None:
        twin.check("-v", "--sw")
        # Same number of tests, but the one that failed is renamed.
        five.makepyfile(test_five=FIVE_TESTS.replace("test_two", "test_deux"))
        lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines) == [
            "stepwise: previously failed test not found, not skipping."
        ]
        assert ran(lines) == ["test_one", "test_deux"]

    def test_quiet_hides_the_messages(self, twin, five) -> None:
        for _ in range(2):
            result = twin.run("-q", "--sw")
            for run in (result.ours, result.builtin):
                assert stepwise_lines(run.outlines) == []
            # Stopping at a failure interrupts the session.
            assert result.ours.ret == result.builtin.ret == pytest.ExitCode.INTERRUPTED
            assert result.ours.parseoutcomes() == result.builtin.parseoutcomes()
        assert result.ours.parseoutcomes() == {"failed": 1, "deselected": 1}

    def test_without_sw_state_is_left_alone(self, twin, five) -> None:
        twin.check("-v", "--sw")
        before = stored(five.path / twin.OURS_DIR)
        twin.check("-v")
        assert stored(five.path / twin.OURS_DIR) == before
        lines = twin.check("-v", "--sw")
        assert ran(lines) == ["test_two"]

    def test_failure_in_setup_stops_too(self, twin, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            import pytest

            @pytest.fixture
            def broken():
                raise RuntimeError("setup")

            def test_a():
                pass

            def test_b(broken):
                pass

            def test_c():
                pass
            """
        )
        twin.check("-v", "--sw")
        lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines)[0].startswith(
            "stepwise: skipping 1 already passed items"
        )


class TestStoredRecord:
    def test_shape(self, twin, five) -> None:
        twin.check("--sw")
        ours = stored(five.path / twin.OURS_DIR)
        builtin = stored(five.path / twin.BUILTIN_DIR)
        assert isinstance(ours, dict)
        assert isinstance(builtin, dict)
        assert (
            set(ours)
            == set(builtin)
            == {
                "last_failed",
                "last_test_count",
                "last_cache_date_str",
            }
        )
        assert ours["last_failed"] == builtin["last_failed"] == "test_five.py::test_two"
        assert ours["last_test_count"] == builtin["last_test_count"] == 5
        datetime.fromisoformat(ours["last_cache_date_str"])

    def test_cleared_failure_is_null(self, twin, five) -> None:
        fix(five, "two")
        fix(five, "four")
        twin.check("--sw")
        ours = stored(five.path / twin.OURS_DIR)
        assert ours == {
            **stored(five.path / twin.BUILTIN_DIR),
            "last_cache_date_str": ours["last_cache_date_str"],
        }
        assert ours["last_failed"] is None

    def test_builtin_reads_ours_and_back(self, pytester: pytest.Pytester, five) -> None:
        """Both providers share the same record in the default cache directory."""
        result = pytester.runpytest("-v", "--sw")
        assert ran(result.outlines) == ["test_one", "test_two"]
        result = pytester.runpytest("-v", "--sw", "-p", "no:crosscache")
        result.stdout.fnmatch_lines(["stepwise: skipping 1 already passed items*"])
        fix(five, "two")
        result = pytester.runpytest("-v", "--sw", "-p", "no:crosscache")
        assert ran(result.outlines) == ["test_two", "test_three", "test_four"]
        result = pytester.runpytest("-v", "--sw")
        result.stdout.fnmatch_lines(["stepwise: skipping 3 already passed items*"])
        assert ran(result.outlines) == ["test_four"]


def write_record(cachedir: Path, data: str) -> None:
    path = cachedir / STEPWISE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data, encoding="utf-8")


VALID = {
    "last_failed": "test_five.py::test_two",
    "last_test_count": 5,
    "last_cache_date_str": "2024-01-02T03:04:05.678901",
}

ERROR_LINE = re.compile(r"stepwise: error reading cache, discarding \((.+)\)$")


class TestMalformedRecord:
    @pytest.mark.parametrize(
        ("record", "detail"),
        [
            pytest.param(
                {"last_failed": None, "last_test_count": 5},
                "KeyError: 'last_cache_date_str'",
                id="no-date",
            ),
            pytest.param(
                {"last_test_count": 5, "last_cache_date_str": "x"},
                "KeyError: 'last_failed'",
                id="no-last-failed",
            ),
            pytest.param(
                {"last_failed": "test_five.py::test_two"},
                "KeyError: 'last_test_count'",
                id="only-last-failed",
            ),
        ],
    )
    def test_missing_keys_same_as_builtin(
        self, twin, five, record: object, detail: str
    ) -> None:
        for cachedir in (twin.OURS_DIR, twin.BUILTIN_DIR):
            write_record(five.path / cachedir, json.dumps(record))
        with pytest.warns(pytest.PytestCacheWarning, match="cache/stepwise"):
            lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines) == [
            f"stepwise: error reading cache, discarding ({detail})",
            "stepwise: no previously failed tests, not skipping.",
        ]
        assert ran(lines) == ["test_one", "test_two"]

    @pytest.mark.parametrize(
        "record",
        [
            pytest.param([1, 2], id="list"),
            pytest.param("test_five.py::test_two", id="string"),
            pytest.param(True, id="true"),
            pytest.param({**VALID, "last_failed": 5}, id="last-failed-number"),
            pytest.param(
                {**VALID, "last_failed": ["test_five.py::test_two"]},
                id="last-failed-list",
            ),
            pytest.param({**VALID, "last_test_count": "5"}, id="count-string"),
            pytest.param({**VALID, "last_test_count": 5.0}, id="count-float"),
            pytest.param({**VALID, "last_test_count": True}, id="count-bool"),
            pytest.param({**VALID, "last_cache_date_str": "yesterday"}, id="bad-date"),
            pytest.param(
                {**VALID, "last_cache_date_str": 1700000000}, id="date-number"
            ),
            pytest.param({**VALID, "last_cache_date_str": None}, id="date-null"),
        ],
    )
    def test_discarded_without_crash(self, five, record: object) -> None:
        write_record(five.path / ".pytest_cache", json.dumps(record))
        with pytest.warns(pytest.PytestCacheWarning, match="cache/stepwise"):
            result = five.runpytest("-v", "--sw")
        assert result.ret == pytest.ExitCode.INTERRUPTED
        lines = stepwise_lines(result.outlines)
        assert len(lines) == 2, lines
        assert ERROR_LINE.match(lines[0]), lines[0]
        assert lines[1] == "stepwise: no previously failed tests, not skipping."
        # Nothing was skipped: the record was dropped, not half used.
        assert ran(result.outlines) == ["test_one", "test_two"]
        # And a good record replaces it.
        assert (
            stored(five.path / ".pytest_cache")["last_failed"]
            == "test_five.py::test_two"
        )

    @pytest.mark.parametrize(
        "record",
        [pytest.param("[1, 2]", id="list"), pytest.param('"abc"', id="string")],
    )
    def test_detail_names_the_type_error(self, five, record: str) -> None:
        write_record(five.path / ".pytest_cache", record)
        with pytest.warns(pytest.PytestCacheWarning, match="cache/stepwise"):
            result = five.runpytest("--sw")
        match = ERROR_LINE.match(stepwise_lines(result.outlines)[0])
        assert match
        assert match.group(1).startswith("TypeError: ")

    def test_bad_date_named(self, five) -> None:
        write_record(
            five.path / ".pytest_cache",
            json.dumps({**VALID, "last_cache_date_str": "yesterday"}),
        )
        with pytest.warns(pytest.PytestCacheWarning):
            result = five.runpytest("--sw")
        result.stdout.fnmatch_lines(
            ["stepwise: error reading cache, discarding (ValueError: *yesterday*)"]
        )

    @pytest.mark.parametrize("data", ["{}", "[]", "null", "0", '""', "{not json"])
    def test_empty_or_unreadable_is_no_state(self, twin, five, data: str) -> None:
        for cachedir in (twin.OURS_DIR, twin.BUILTIN_DIR):
            write_record(five.path / cachedir, data)
        if data == "{not json":
            with pytest.warns(
                pytest.PytestCacheWarning, match=r"'cache/stepwise'.*not valid JSON"
            ):
                lines = twin.check("-v", "--sw")
        else:
            lines = twin.check("-v", "--sw")
        assert stepwise_lines(lines) == [
            "stepwise: no previously failed tests, not skipping."
        ]

    def test_valid_record_from_elsewhere_is_used(self, twin, five) -> None:
        # Recent, so that the age shown stays within what the comparison normalises.
        record = {**VALID, "last_cache_date_str": datetime.now().isoformat()}
        for cachedir in (twin.OURS_DIR, twin.BUILTIN_DIR):
            write_record(five.path / cachedir, json.dumps(record))
        lines = twin.check("-v", "--sw")
        assert ran(lines) == ["test_two"]
        (line,) = stepwise_lines(lines)
        assert line.startswith("stepwise: skipping 1 already passed items (cache from ")
