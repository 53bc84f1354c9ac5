"""``--lf``, ``--ff`` and ``--lfnf`` against pytest's builtin provider, step by step.

Each scenario evolves one project through several runs (fail, edit,
rerun with ``--lf`` ...).  Every run happens twice, once under
pytest-crosscache and once under the builtin provider (``-p no:crosscache``),
each with its own cache directory; both must print the same thing, exit
the same way and leave the same ``cache/lastfailed`` record behind.  The
targeted asserts on top pin the expected behaviour itself, so a change
that both providers shared would still be caught.

The last part covers what is ours alone: damaged records and merging with
a record another session stored meanwhile.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

LASTFAILED = ("v", "cache", "lastfailed")
_DURATION = re.compile(r"\bin \d+\.\d+s\b( \([0-9:.]+\))?")


@pytest.fixture(autouse=True)
def _no_stale_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    # Scenarios rewrite test files within the same second; a .pyc keyed on
    # mtime and size could then bring back the previous version.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)


def stored(pytester: pytest.Pytester, cache_dir: str) -> list[tuple[str, bool]] | None:
    """The ``cache/lastfailed`` record in ``cache_dir``, key order included."""
    path = pytester.path.joinpath(cache_dir, *LASTFAILED)
    if not path.exists():
        return None
    return list(json.loads(path.read_text("utf-8")).items())


def assert_same_record(twin, *, absent_is_empty: bool = True) -> None:
    """Both providers stored the same ``cache/lastfailed``, keys in the same order.

    With ``absent_is_empty`` a missing record counts as ``{}``; whether the
    file exists at all is checked on its own in
    :func:`test_no_record_written_when_nothing_ever_failed`.
    """
    ours = stored(twin.pytester, twin.OURS_DIR)
    builtin = stored(twin.pytester, twin.BUILTIN_DIR)
    if absent_is_empty:
        ours, builtin = ours or [], builtin or []
    assert ours == builtin, (
        f"cache/lastfailed differs:\n ours:    {ours}\n builtin: {builtin}"
    )


def step(twin, *args: str) -> list[str]:
    """One run under both providers: same output, exit code and stored record."""
    lines = twin.check(*args)
    assert_same_record(twin)
    return lines


def step_quiet(twin, *args: str) -> list[str]:
    """Like :func:`step` for ``-q`` runs, which print no header to skip: compare it all."""
    result = twin.run(*args)
    ours = [_DURATION.sub("in T", line) for line in result.ours.outlines]
    builtin = [_DURATION.sub("in T", line) for line in result.builtin.outlines]
    assert ours == builtin, "\n".join(["crosscache:", *ours, "", "builtin:", *builtin])
    assert result.ours.ret == result.builtin.ret
    assert_same_record(twin)
    return ours


def record(twin) -> dict[str, bool]:
    """Our stored record (the builtin's is equal after every :func:`step`)."""
    return dict(stored(twin.pytester, twin.OURS_DIR) or [])


def outcomes(lines: list[str]) -> list[str]:
    """``nodeid OUTCOME`` for each test line of a ``-v`` run, in run order."""
    found = []
    for line in lines:
        match = re.match(
            r"(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", line
        )
        if match:
            found.append(f"{match[1]} {match[2]}")
    return found


def summary(lines: list[str]) -> str:
    """The final ``==== 1 failed, 2 passed in T ====`` line, without the rulers."""
    # Not simply the last line: plugins (pytest-xprocess) may print after it.
    return next(
        line.strip("= ")
        for line in reversed(lines)
        if re.fullmatch(r"=+ .* in T =+", line)
    )


# --- selection and order -------------------------------------------------------


def test_failures_then_lf_reruns_only_them(twin) -> None:
    twin.pytester.makepyfile(
        test_one="""
        def test_pass(): pass
        def test_fail1(): assert 0
        def test_fail2(): assert 0
        """,
        test_two="def test_pass_too(): pass",
    )
    assert summary(step(twin, "-v")) == "2 failed, 2 passed in T"
    assert record(twin) == {
        "test_one.py::test_fail1": True,
        "test_one.py::test_fail2": True,
    }

    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 2 failures (skipped 1 file)" in lines
    assert outcomes(lines) == [
        "test_one.py::test_fail1 FAILED",
        "test_one.py::test_fail2 FAILED",
    ]
    assert summary(lines) == "2 failed in T"

    # The long spelling, and the record is stable across reruns.
    lines = step(twin, "-v", "--last-failed")
    assert "run-last-failure: rerun previous 2 failures (skipped 1 file)" in lines
    assert record(twin) == {
        "test_one.py::test_fail1": True,
        "test_one.py::test_fail2": True,
    }


def test_plain_run_does_not_report_run_last_failure(twin) -> None:
    twin.pytester.makepyfile("def test_fail(): assert 0")
    lines = step(twin)
    assert not any(line.startswith("run-last-failure") for line in lines)
    lines = step(twin)
    assert not any(line.startswith("run-last-failure") for line in lines)
    assert summary(lines) == "1 failed in T"


def test_ff_runs_failures_first_then_everything_else(twin) -> None:
    twin.pytester.makepyfile(
        test_a="""
        def test_a1(): pass
        def test_a2(): assert 0
        """,
        test_b="""
        def test_b1(): assert 0
        def test_b2(): pass
        """,
    )
    step(twin, "-v")

    lines = step(twin, "-v", "--ff")
    assert "run-last-failure: rerun previous 2 failures first" in lines
    assert outcomes(lines) == [
        "test_a.py::test_a2 FAILED",
        "test_b.py::test_b1 FAILED",
        "test_a.py::test_a1 PASSED",
        "test_b.py::test_b2 PASSED",
    ]

    twin.pytester.makepyfile(
        test_a="""
        def test_a1(): pass
        def test_a2(): pass
        """
    )
    # The record still holds test_a2 until this run shows it passes.
    lines = step(twin, "-v", "--failed-first")
    assert "run-last-failure: rerun previous 2 failures first" in lines
    assert outcomes(lines)[:2] == [
        "test_a.py::test_a2 PASSED",
        "test_b.py::test_b1 FAILED",
    ]
    lines = step(twin, "-v", "--failed-first")
    assert "run-last-failure: rerun previous 1 failure first" in lines
    assert outcomes(lines) == [
        "test_b.py::test_b1 FAILED",
        "test_a.py::test_a1 PASSED",
        "test_a.py::test_a2 PASSED",
        "test_b.py::test_b2 PASSED",
    ]

    twin.pytester.makepyfile(
        test_b="""
        def test_b1(): pass
        def test_b2(): pass
        """
    )
    step(twin, "-v", "--ff")
    lines = step(twin, "-v", "--ff")
    assert (
        "run-last-failure: no previously failed tests, not deselecting items." in lines
    )
    assert [line.split()[0] for line in outcomes(lines)] == [
        "test_a.py::test_a1",
        "test_a.py::test_a2",
        "test_b.py::test_b1",
        "test_b.py::test_b2",
    ]


def test_lf_when_the_failures_pass_now(twin) -> None:
    twin.pytester.makepyfile(
        test_fixme="""
        def test_ok(): pass
        def test_broken(): assert 0
        """,
        test_other="def test_other(): pass",
    )
    step(twin, "-v")
    twin.pytester.makepyfile(
        test_fixme="""
        def test_ok(): pass
        def test_broken(): assert 1
        """
    )
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 1 failure (skipped 1 file)" in lines
    assert outcomes(lines) == ["test_fixme.py::test_broken PASSED"]
    assert summary(lines) == "1 passed in T"
    assert record(twin) == {}

    # Nothing known to fail any more: --lf runs everything.
    lines = step(twin, "-v", "--lf")
    assert (
        "run-last-failure: no previously failed tests, not deselecting items." in lines
    )
    assert summary(lines) == "3 passed in T"


@pytest.mark.parametrize("option", ["--lf", "--ff"])
@pytest.mark.parametrize("spelling", ["--lfnf", "--last-failed-no-failures"])
def test_lfnf_without_known_failures(twin, option: str, spelling: str) -> None:
    twin.pytester.makepyfile(
        """
        def test_one(): pass
        def test_two(): pass
        """
    )
    step(twin, "-v")

    lines = step(twin, "-v", option, spelling, "all")
    assert (
        "run-last-failure: no previously failed tests, not deselecting items." in lines
    )
    assert summary(lines) == "2 passed in T"

    lines = step(twin, "-v", option, spelling, "none")
    assert (
        "run-last-failure: no previously failed tests, deselecting all items." in lines
    )
    assert summary(lines) == "2 deselected in T"
    assert (
        twin.run("-v", option, spelling, "none").ours.ret
        == pytest.ExitCode.NO_TESTS_COLLECTED
    )


def test_lfnf_none_with_known_failures_still_reruns_them(twin) -> None:
    twin.pytester.makepyfile(
        """
        def test_one(): pass
        def test_two(): assert 0
        """
    )
    step(twin)
    lines = step(twin, "-v", "--lf", "--lfnf", "none")
    assert "run-last-failure: rerun previous 1 failure" in lines
    assert outcomes(lines) == [
        "test_lfnf_none_with_known_failures_still_reruns_them.py::test_two FAILED"
    ]


def test_lfnf_rejects_other_values(twin) -> None:
    twin.pytester.makepyfile("def test_one(): pass")
    result = twin.run("--lf", "--lfnf", "some")
    for run in (result.ours, result.builtin):
        assert run.ret == pytest.ExitCode.USAGE_ERROR
        run.stderr.fnmatch_lines(
            ["*argument --lfnf/--last-failed-no-failures: invalid choice: 'some'*"]
        )
    assert result.ours.errlines[-1] == result.builtin.errlines[-1]


def test_lf_and_ff_together_select_only_failures(twin) -> None:
    twin.pytester.makepyfile(
        """
        def test_a(): pass
        def test_b(): assert 0
        def test_c(): pass
        """
    )
    step(twin)
    lines = step(twin, "-v", "--lf", "--ff")
    assert "run-last-failure: rerun previous 1 failure first" in lines
    # Passing tests of a file with failures are never collected: not "deselected".
    assert summary(lines) == "1 failed in T"


def test_lf_collect_only_lists_the_failures(twin) -> None:
    twin.pytester.makepyfile(
        test_a="""
        def test_a(): pass
        def test_b(): assert 0
        """,
        test_b="def test_c(): assert 0",
        test_c="def test_d(): pass",
    )
    step(twin)
    lines = step(twin, "--lf", "--collect-only")
    assert "run-last-failure: rerun previous 2 failures (skipped 1 file)" in lines
    assert "    <Function test_b>" in lines
    assert "    <Function test_a>" not in lines

    lines = step_quiet(twin, "--lf", "--co", "-q")
    assert [line for line in lines if "::" in line] == [
        "test_a.py::test_b",
        "test_b.py::test_c",
    ]
    assert not any(line.startswith("run-last-failure") for line in lines)

    # Collecting does not run anything: the record is untouched.
    assert set(record(twin)) == {"test_a.py::test_b", "test_b.py::test_c"}


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [("-qq", False), ("-q", False), (None, True), ("-v", True), ("-vv", True)],
)
def test_run_last_failure_line_depends_on_verbosity(
    twin, verbosity, shown: bool
) -> None:
    twin.pytester.makepyfile(
        test_a="""
        def test_pass(): pass
        def test_fail(): assert 0
        """,
        test_b="def test_pass(): pass",
    )
    step(twin)
    args = ["--lf"] if verbosity is None else ["--lf", verbosity]
    lines = step(twin, *args) if shown else step_quiet(twin, *args)
    line = "run-last-failure: rerun previous 1 failure (skipped 1 file)"
    assert (line in lines) is shown
    if not shown:
        assert not any("run-last-failure" in line for line in lines)


# --- collection errors -------------------------------------------------------------


def test_collection_error_then_fixed(twin) -> None:
    pytester = twin.pytester
    pytester.makepyfile(
        test_broken="""
        import no_such_module_here
        def test_never(): pass
        """,
        test_fine="""
        def test_fine1(): pass
        def test_fine2(): pass
        """,
    )
    lines = step(twin, "-v")
    assert summary(lines) == "1 error in T"
    assert record(twin) == {"test_broken.py": True}

    # Still broken: the file's error is rerun, the other file is collected.
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: 1 known failures not in selected tests" in lines
    assert summary(lines) == "1 error in T"

    # Still broken, but the other file's tests run anyway when errors are allowed.
    lines = step(twin, "-v", "--lf", "--continue-on-collection-errors")
    assert "run-last-failure: 1 known failures not in selected tests" in lines
    assert summary(lines) == "2 passed, 1 error in T"

    # Fixed: every test of the file counts as a failure to rerun.
    pytester.makepyfile(
        test_broken="""
        def test_now_ok(): pass
        def test_now_bad(): assert 0
        """
    )
    lines = step(twin, "-v", "--lf")
    assert "collecting ... collected 4 items / 2 deselected / 2 selected" in lines
    assert "run-last-failure: rerun previous 2 failures" in lines
    assert outcomes(lines) == [
        "test_broken.py::test_now_ok PASSED",
        "test_broken.py::test_now_bad FAILED",
    ]
    assert record(twin) == {"test_broken.py::test_now_bad": True}

    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 1 failure (skipped 1 file)" in lines
    assert outcomes(lines) == ["test_broken.py::test_now_bad FAILED"]


def test_collection_error_in_a_package_init(twin) -> None:
    pytester = twin.pytester
    pytester.makepyfile(
        **{
            "pkg/__init__": "raise RuntimeError('package import fails')",
            "pkg/test_in_pkg": "def test_in_pkg(): pass",
            "test_top": "def test_top(): pass",
        }
    )
    step(twin, "-v")
    step(twin, "-v", "--lf")
    pytester.makepyfile(**{"pkg/__init__": ""})
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 1 failure" in lines
    assert outcomes(lines) == ["pkg/test_in_pkg.py::test_in_pkg PASSED"]
    lines = step(twin, "-v", "--lf")
    assert (
        "run-last-failure: no previously failed tests, not deselecting items." in lines
    )


def test_collection_error_with_ff(twin) -> None:
    twin.pytester.makepyfile(
        test_broken="def test_x(:",
        test_fine="def test_fine(): pass",
    )
    step(twin, "-v")
    lines = step(twin, "-v", "--ff")
    assert "run-last-failure: 1 known failures not in selected tests" in lines
    twin.pytester.makepyfile(test_broken="def test_x(): assert 0")
    step(twin, "-v", "--ff")
    lines = step(twin, "-v", "--ff")
    assert "run-last-failure: rerun previous 1 failure first" in lines
    assert outcomes(lines) == [
        "test_broken.py::test_x FAILED",
        "test_fine.py::test_fine PASSED",
    ]


# --- outcomes ------------------------------------------------------------------------


def test_xfail_xpass_and_strict_xfail(twin) -> None:
    twin.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xfail(reason="known bug")
        def test_xfailed(): assert 0

        @pytest.mark.xfail(reason="fixed meanwhile")
        def test_xpassed(): pass

        @pytest.mark.xfail(strict=True, reason="must fail")
        def test_strict_xpassed(): pass

        @pytest.mark.xfail(run=False, reason="not even run")
        def test_not_run(): assert 0

        def test_imperative_xfail():
            pytest.xfail("gave up")

        def test_plain_failure(): assert 0
        """
    )
    lines = step(twin, "-v", "-rA")
    assert set(record(twin)) == {
        "test_xfail_xpass_and_strict_xfail.py::test_strict_xpassed",
        "test_xfail_xpass_and_strict_xfail.py::test_plain_failure",
    }
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 2 failures" in lines
    assert summary(lines) == "2 failed in T"

    # Strictness from the ini file; xpass now fails too.
    twin.pytester.makeini("[pytest]\nxfail_strict = true\n")
    lines = step(twin, "-v", "--ff")
    assert "run-last-failure: rerun previous 2 failures first" in lines
    assert len(record(twin)) == 3
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 3 failures" in lines


def test_parametrized_tests_with_unusual_ids(twin) -> None:
    pytester = twin.pytester
    pytester.makepyfile(
        test_params="""
        import pytest

        @pytest.mark.parametrize(
            "value",
            ["a/b", "x::y", "sp ace", "br[ack]et", "ü", 1, 2.5, None],
        )
        def test_value(value):
            assert value not in ("x::y", "ü", 1, None)

        @pytest.mark.parametrize("n", range(3), ids=lambda n: f"case-{n}")
        @pytest.mark.parametrize("flag", [True, False])
        def test_grid(n, flag):
            assert not (flag and n == 1)
        """
    )
    step(twin, "-v")
    assert len(record(twin)) == 5
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 5 failures" in lines
    assert summary(lines) == "5 failed in T"

    # One failing parameter no longer exists; its entry stays recorded but
    # only the four remaining failures are rerun.
    pytester.makepyfile(
        test_params="""
        import pytest

        @pytest.mark.parametrize("value", ["a/b", "x::y", "sp ace", "ü", 1, 2.5])
        def test_value(value):
            assert value not in ("x::y", "ü", 1, None)

        @pytest.mark.parametrize("n", range(3), ids=lambda n: f"case-{n}")
        @pytest.mark.parametrize("flag", [True, False])
        def test_grid(n, flag):
            assert not (flag and n == 1)
        """
    )
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 4 failures" in lines
    assert len(record(twin)) == 5
    # Select one parameter explicitly.
    lines = step(twin, "-v", "--lf", "test_params.py::test_value[x::y]")
    assert "run-last-failure: rerun previous 1 failure" in lines


def test_class_based_tests(twin) -> None:
    # --tb=short: long tracebacks show ``self = <... object at 0x...>``.
    pytester = twin.pytester
    pytester.makepyfile(
        test_classes="""
        import unittest

        class TestOuter:
            def test_ok(self): pass
            def test_bad(self): assert 0

            class TestInner:
                def test_inner_bad(self): assert 0
                def test_inner_ok(self): pass

        class TestAllGood:
            def test_good(self): pass

        class TestUnit(unittest.TestCase):
            def test_unit_ok(self): pass
            def test_unit_bad(self): self.assertEqual(1, 2)
        """
    )
    step(twin, "-v", "--tb=short")
    assert set(record(twin)) == {
        "test_classes.py::TestOuter::test_bad",
        "test_classes.py::TestOuter::TestInner::test_inner_bad",
        "test_classes.py::TestUnit::test_unit_bad",
    }
    lines = step(twin, "-v", "--tb=short", "--lf")
    assert "run-last-failure: rerun previous 3 failures" in lines
    lines = step(twin, "-v", "--tb=short", "--lf", "test_classes.py::TestOuter")
    assert "run-last-failure: rerun previous 2 failures" in lines
    lines = step(twin, "-v", "--tb=short", "--lf", "test_classes.py::TestAllGood")
    assert "run-last-failure: 3 known failures not in selected tests" in lines
    lines = step(
        twin, "-v", "--tb=short", "--ff", "test_classes.py::TestOuter::TestInner"
    )
    assert outcomes(lines) == [
        "test_classes.py::TestOuter::TestInner::test_inner_bad FAILED",
        "test_classes.py::TestOuter::TestInner::test_inner_ok PASSED",
    ]


# --- deselection and paths -----------------------------------------------------


def test_keyword_and_marker_deselection(twin) -> None:
    pytester = twin.pytester
    pytester.makeini("[pytest]\nmarkers =\n    slow: a slow test\n")
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.slow
        def test_slow_fails(): assert 0

        def test_quick_fails(): assert 0
        def test_quick_passes(): pass
        """
    )
    step(twin, "-v")
    lines = step(twin, "-v", "--lf", "-k", "quick")
    assert "run-last-failure: rerun previous 1 failure" in lines
    assert outcomes(lines) == ["test_marked.py::test_quick_fails FAILED"]

    # The passing test is not even collected from a file with failures, so
    # nothing is left for -k to select.
    lines = step(twin, "-v", "--lf", "-k", "passes")
    assert "run-last-failure: 2 known failures not in selected tests" in lines
    assert outcomes(lines) == []
    assert (
        twin.run("--lf", "-k", "passes").ours.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    )

    lines = step(twin, "-v", "--lf", "-m", "slow")
    assert "run-last-failure: rerun previous 1 failure" in lines
    lines = step(twin, "-v", "--lf", "-m", "not slow", "-k", "passes")
    assert "run-last-failure: 2 known failures not in selected tests" in lines
    lines = step(twin, "-v", "--ff", "-m", "not slow")
    assert "run-last-failure: rerun previous 1 failure first" in lines
    assert outcomes(lines) == [
        "test_marked.py::test_quick_fails FAILED",
        "test_marked.py::test_quick_passes PASSED",
    ]


def test_packages_and_skipped_files(twin) -> None:
    pytester = twin.pytester
    pytester.makepyfile(
        **{
            "pkg/__init__": "",
            "pkg/test_shallow": "def test_shallow(): pass",
            "pkg/sub/__init__": "",
            "pkg/sub/test_deep": """
                def test_deep_ok(): pass
                def test_deep_bad(): assert 0
                """,
            "pkg/sub/test_deep_too": "def test_also_ok(): pass",
            "plain/test_no_init": "def test_no_init(): pass",
            "plain/nested/test_nested": "def test_nested_bad(): assert 0",
            "test_top": "def test_top(): pass",
        }
    )
    step(twin, "-v")
    assert set(record(twin)) == {
        "pkg/sub/test_deep.py::test_deep_bad",
        "plain/nested/test_nested.py::test_nested_bad",
    }
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 2 failures (skipped 4 files)" in lines

    lines = step(twin, "-v", "--lf", "pkg")
    assert "run-last-failure: rerun previous 1 failure (skipped 2 files)" in lines
    lines = step(twin, "-v", "--lf", "plain")
    assert "run-last-failure: rerun previous 1 failure (skipped 1 file)" in lines
    lines = step(twin, "-v", "--ff", "pkg")
    assert outcomes(lines)[0] == "pkg/sub/test_deep.py::test_deep_bad FAILED"

    # Fix the nested failure; only the package's failure is left.
    pytester.makepyfile(**{"plain/nested/test_nested": "def test_nested_bad(): pass"})
    step(twin, "-v", "--lf")
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 1 failure (skipped 5 files)" in lines


def test_explicit_file_and_node_arguments(twin) -> None:
    twin.pytester.makepyfile(
        test_a="""
        def test_pass(): pass
        def test_fail(): assert 0
        """,
        test_b="""
        def test_pass(): pass
        def test_fail(): assert 0
        """,
        test_c="def test_pass(): pass",
    )
    step(twin, "-v")
    lines = step(twin, "-v", "--lf", "test_b.py")
    assert "run-last-failure: rerun previous 1 failure" in lines
    assert outcomes(lines) == ["test_b.py::test_fail FAILED"]

    lines = step(twin, "-v", "--lf", "test_a.py::test_pass")
    assert "run-last-failure: 2 known failures not in selected tests" in lines
    assert outcomes(lines) == ["test_a.py::test_pass PASSED"]

    # Even a file named on the command line is skipped when it has no failures.
    lines = step(twin, "-v", "--lf", "test_a.py::test_fail", "test_c.py")
    assert "run-last-failure: rerun previous 1 failure (skipped 1 file)" in lines
    assert outcomes(lines) == ["test_a.py::test_fail FAILED"]

    lines = step(twin, "-v", "--lf", "test_c.py")
    assert "run-last-failure: 2 known failures not in selected tests" in lines

    lines = step(twin, "-v", "--lf", "test_c.py", "test_a.py", "test_b.py")
    assert "run-last-failure: rerun previous 2 failures" in "\n".join(lines)
    lines = step(twin, "-v", "--ff", "test_c.py", "test_b.py")
    assert outcomes(lines)[0] == "test_b.py::test_fail FAILED"


def test_deleted_and_renamed_tests(twin) -> None:
    pytester = twin.pytester
    pytester.makepyfile(
        test_doomed="def test_doomed(): assert 0",
        test_renames="""
        def test_old_name(): assert 0
        def test_stays(): pass
        """,
        test_other="def test_other(): pass",
    )
    step(twin, "-v")
    assert len(record(twin)) == 2

    # The file with a failure is gone; its entry is kept, nothing else changes.
    (pytester.path / "test_doomed.py").unlink()
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 1 failure (skipped 1 file)" in lines
    assert "test_doomed.py::test_doomed" in record(twin)

    # The failing test is renamed (and still fails): nothing known is
    # collected, so no file is skipped and everything runs.
    pytester.makepyfile(
        test_renames="""
        def test_new_name(): assert 0
        def test_stays(): pass
        """
    )
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: 2 known failures not in selected tests" in lines
    assert summary(lines) == "1 failed, 2 passed in T"
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 1 failure (skipped 1 file)" in lines
    assert outcomes(lines) == ["test_renames.py::test_new_name FAILED"]
    assert set(record(twin)) == {
        "test_doomed.py::test_doomed",
        "test_renames.py::test_old_name",
        "test_renames.py::test_new_name",
    }


def test_non_python_test_files(twin) -> None:
    pytester = twin.pytester
    pytester.makeconftest(
        """
        import pytest

        def pytest_collect_file(parent, file_path):
            if file_path.suffix == ".check" and file_path.name.startswith("test"):
                return CheckFile.from_parent(parent, path=file_path)

        class CheckFile(pytest.File):
            def collect(self):
                for line in self.path.read_text().splitlines():
                    name, _, verdict = line.partition(":")
                    yield CheckItem.from_parent(self, name=name.strip(), verdict=verdict.strip())

        class CheckItem(pytest.Item):
            def __init__(self, *, verdict, **kwargs):
                super().__init__(**kwargs)
                self.verdict = verdict

            def runtest(self):
                if self.verdict != "ok":
                    raise AssertionError(f"{self.name} says {self.verdict}")

            def reportinfo(self):
                return self.path, 0, self.name

            def repr_failure(self, excinfo):
                return str(excinfo.value)
        """
    )
    pytester.makefile(".check", test_first="alpha: ok\nbeta: broken\ngamma: ok")
    pytester.makefile(".check", test_second="delta: ok")
    pytester.makefile(".check", **{"data/test_third": "epsilon: broken"})
    pytester.makepyfile(test_py="def test_py(): pass")
    lines = step(twin, "-v")
    assert summary(lines) == "2 failed, 4 passed in T"
    assert set(record(twin)) == {
        "test_first.check::beta",
        "data/test_third.check::epsilon",
    }

    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 2 failures (skipped 2 files)" in lines
    assert outcomes(lines) == [
        "data/test_third.check::epsilon FAILED",
        "test_first.check::beta FAILED",
    ]

    pytester.makefile(".check", test_first="alpha: ok\nbeta: ok\ngamma: ok")
    lines = step(twin, "-v", "--ff")
    assert "run-last-failure: rerun previous 2 failures first" in lines
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 1 failure (skipped 3 files)" in lines


def test_setup_and_teardown_failures(twin) -> None:
    twin.pytester.makepyfile(
        test_fixtures="""
        import pytest

        @pytest.fixture
        def broken_setup():
            raise RuntimeError("setup fails")

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown fails")

        def test_setup_error(broken_setup): pass
        def test_teardown_error(broken_teardown): pass
        def test_teardown_error_and_failure(broken_teardown): assert 0
        def test_clean(): pass

        class TestClassSetup:
            @classmethod
            def setup_class(cls):
                raise RuntimeError("class setup fails")

            def test_in_class(self): pass
        """
    )
    lines = step(twin, "-v")
    assert set(record(twin)) == {
        "test_fixtures.py::test_setup_error",
        "test_fixtures.py::test_teardown_error",
        "test_fixtures.py::test_teardown_error_and_failure",
        "test_fixtures.py::TestClassSetup::test_in_class",
    }
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 4 failures" in lines
    assert summary(lines) == "1 failed, 1 passed, 4 errors in T"


def test_skipped_tests_clear_their_failure(twin) -> None:
    pytester = twin.pytester
    pytester.makepyfile(
        test_skips="""
        def test_one(): assert 0
        def test_two(): assert 0
        def test_three(): assert 0
        def test_four(): pass
        """
    )
    step(twin, "-v")
    pytester.makepyfile(
        test_skips="""
        import pytest

        def test_one(): pytest.skip("not today")

        @pytest.mark.skipif(True, reason="never here")
        def test_two(): assert 0

        def test_three(): assert 0
        def test_four(): pass
        """
    )
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 3 failures" in lines
    assert record(twin) == {"test_skips.py::test_three": True}
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 1 failure" in lines


def test_module_level_skip_clears_collected_failure(twin) -> None:
    pytester = twin.pytester
    pytester.makepyfile(test_mod="import nothing_by_that_name\ndef test_x(): pass")
    step(twin, "-v")
    pytester.makepyfile(
        test_mod="""
        import pytest
        pytest.skip("skipped module", allow_module_level=True)
        def test_x(): pass
        """
    )
    step(twin, "-v", "--lf")
    lines = step(twin, "-v", "--lf")
    assert (
        "run-last-failure: no previously failed tests, not deselecting items." in lines
    )


@pytest.mark.parametrize("args", [(), ("--lf",), ("--ff",), ("--lf", "--lfnf", "none")])
def test_no_record_written_when_nothing_ever_failed(twin, args) -> None:
    """Like the builtin, no ``cache/lastfailed`` until there is something to record."""
    twin.pytester.makepyfile("def test_ok(): pass")
    step(twin, *args)
    assert_same_record(twin, absent_is_empty=False)
    assert stored(twin.pytester, twin.BUILTIN_DIR) is None
    step(twin, *args)
    assert_same_record(twin, absent_is_empty=False)


def test_maxfail_stops_and_keeps_unrun_failures(twin) -> None:
    twin.pytester.makepyfile(
        """
        def test_a(): assert 0
        def test_b(): assert 0
        def test_c(): assert 0
        """
    )
    step(twin, "-v")
    twin.pytester.makepyfile(
        """
        def test_a(): pass
        def test_b(): assert 0
        def test_c(): pass
        """
    )
    lines = step(twin, "-v", "--lf", "-x")
    assert summary(lines) == "1 failed, 1 passed in T"
    assert set(record(twin)) == {
        "test_maxfail_stops_and_keeps_unrun_failures.py::test_b",
        "test_maxfail_stops_and_keeps_unrun_failures.py::test_c",
    }


# --- our own behaviour: damaged records ------------------------------------------


def _lastfailed_path(pytester: pytest.Pytester):
    return pytester.path.joinpath(".pytest_cache", *LASTFAILED)


def everything(result: pytest.RunResult) -> pytest.LineMatcher:
    """stdout and stderr together.

    The record is read while pytest configures, where a warning is printed
    to stderr rather than collected into the warnings summary.  That is
    also why these runs are subprocesses: in process, the outer test's
    warning capture would swallow it.
    """
    return pytest.LineMatcher(result.outlines + result.errlines)


@pytest.mark.parametrize(
    ("content", "found"),
    [
        ('["test_x.py::test_fails"]', "list"),
        ('"test_x.py::test_fails"', "str"),
        ("42", "int"),
        ("null", "NoneType"),
        ('{"test_x.py::test_fails": tru', None),
        ("", None),
    ],
    ids=["list", "string", "number", "null", "invalid-json", "empty-file"],
)
def test_damaged_record_warns_and_starts_afresh(
    pytester: pytest.Pytester, content: str, found
) -> None:
    pytester.makepyfile(
        test_x="""
        def test_fails(): assert 0
        def test_passes(): pass
        """
    )
    path = _lastfailed_path(pytester)
    path.parent.mkdir(parents=True)
    path.write_text(content, "utf-8")

    # -W error: projects commonly run so; a damaged cache must not fail them.
    result = pytester.runpytest_subprocess("--lf", "-W", "error")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        ["run-last-failure: no previously failed tests, not deselecting items."]
    )
    warning = ["*PytestCacheWarning: *'cache/lastfailed'*"]
    if found is not None:
        warning = [f"*PytestCacheWarning: *'cache/lastfailed'*found {found}*"]
    everything(result).fnmatch_lines(warning)
    result.assert_outcomes(failed=1, passed=1)

    # The run repaired the record.
    assert json.loads(path.read_text("utf-8")) == {"test_x.py::test_fails": True}
    result = pytester.runpytest("--lf", "-W", "error")
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
    result.assert_outcomes(failed=1)


def test_damaged_record_without_lf(pytester: pytest.Pytester) -> None:
    """The record is read on every run, not just with ``--lf``."""
    pytester.makepyfile("def test_passes(): pass")
    path = _lastfailed_path(pytester)
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2, 3]", "utf-8")
    result = pytester.runpytest_subprocess()
    everything(result).fnmatch_lines(
        ["*PytestCacheWarning: *'cache/lastfailed'*found list*"]
    )
    result.assert_outcomes(passed=1)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_record_with_odd_values_is_still_usable(twin) -> None:
    """Values other than ``true`` are not ours to judge: pytest only looks at keys."""
    twin.pytester.makepyfile(
        """
        def test_a(): assert 0
        def test_b(): pass
        """
    )
    for cache_dir in (twin.OURS_DIR, twin.BUILTIN_DIR):
        path = twin.pytester.path.joinpath(cache_dir, *LASTFAILED)
        path.parent.mkdir(parents=True)
        name = "test_record_with_odd_values_is_still_usable.py"
        path.write_text(json.dumps({f"{name}::test_a": 1, f"{name}::test_b": None}))
    lines = step(twin, "-v", "--lf")
    assert "run-last-failure: rerun previous 2 failures" in lines


# --- our own behaviour: merging with another session's record --------------------

OTHER_SESSION = """
import pytest

def other_session_writes(config):
    # What a concurrent session storing its results would leave behind.
    record = config.cache.get("cache/lastfailed", {})
    record["test_elsewhere.py::test_theirs"] = True
    record["test_here.py::test_fixed"] = True
    record.pop("test_untouched.py::test_cleared_by_them", None)
    config.cache.set("cache/lastfailed", record)
"""

WRITE_AT_SESSIONFINISH = (
    OTHER_SESSION
    + """
@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    other_session_writes(session.config)
"""
)

WRITE_IN_A_TEST = (
    OTHER_SESSION
    + """
@pytest.fixture
def other_session(request):
    return lambda: other_session_writes(request.config)
"""
)


@pytest.mark.parametrize("when", ["sessionfinish", "test-body"])
def test_merge_with_concurrent_record(pytester: pytest.Pytester, when: str) -> None:
    pytester.makepyfile(
        test_here="""
        def test_fixed(): assert 0
        def test_newly_broken(): pass
        def test_still_broken(): assert 0
        """,
        test_untouched="""
        def test_cleared_by_them(): assert 0
        def test_stays_failed(): assert 0
        """,
    )
    pytester.runpytest().assert_outcomes(failed=4, passed=1)
    path = _lastfailed_path(pytester)
    assert set(json.loads(path.read_text("utf-8"))) == {
        "test_here.py::test_fixed",
        "test_here.py::test_still_broken",
        "test_untouched.py::test_cleared_by_them",
        "test_untouched.py::test_stays_failed",
    }

    pytester.makeconftest(
        WRITE_AT_SESSIONFINISH if when == "sessionfinish" else WRITE_IN_A_TEST
    )
    body = """
        def test_fixed(): pass
        def test_newly_broken(): assert 0
        def test_still_broken(): assert 0
        """
    if when == "test-body":
        body += "def test_zz_other_session(other_session): other_session()\n"
    pytester.makepyfile(test_here=body)
    # Only test_here.py runs; test_untouched.py's entries are not ours to change.
    result = pytester.runpytest("test_here.py", "-W", "error")
    result.assert_outcomes(failed=2, passed=2 if when == "test-body" else 1)

    assert json.loads(path.read_text("utf-8")) == {
        # Theirs, untouched here: kept.
        "test_elsewhere.py::test_theirs": True,
        # Ours and theirs both.
        "test_untouched.py::test_stays_failed": True,
        # This session's outcomes applied on top.
        "test_here.py::test_still_broken": True,
        "test_here.py::test_newly_broken": True,
    }

    # And --lf picks up the merged record.
    result = pytester.runpytest("--lf", "--co", "-q")
    assert {line for line in result.outlines if "::" in line} == {
        "test_here.py::test_newly_broken",
        "test_here.py::test_still_broken",
        "test_untouched.py::test_stays_failed",
    }


def test_merge_keeps_their_entries_when_everything_passes_here(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_here="def test_fixed(): pass")
    pytester.makeconftest(WRITE_AT_SESSIONFINISH)
    pytester.runpytest("-W", "error").assert_outcomes(passed=1)
    # test_fixed passed here, so the failure the other session stored for it
    # is cleared; their own failure stays.
    assert json.loads(_lastfailed_path(pytester).read_text("utf-8")) == {
        "test_elsewhere.py::test_theirs": True,
    }
