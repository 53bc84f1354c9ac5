"""``--nf``: new tests first, then by file modification time; ``cache/nodeids``."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

NODEIDS = Path("v", "cache", "nodeids")


def write_test_file(
    pytester: pytest.Pytester, name: str, source: str, mtime: int
) -> Path:
    """Write ``name.py`` and give it a fixed mtime, so --nf's order is deterministic."""
    path = pytester.path / f"{name}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def run_order(lines: list[str]) -> list[str]:
    """The ``-v`` result lines of a run, in execution order, without the progress."""
    return [
        line.split()[0] for line in lines if line.startswith("test_") and "::" in line
    ]


def stored_nodeids(cachedir: Path) -> object:
    return json.loads((cachedir / NODEIDS).read_text(encoding="utf-8"))


@pytest.fixture
def three_files(pytester: pytest.Pytester) -> pytest.Pytester:
    """Three test files, the oldest first in collection order."""
    write_test_file(
        pytester, "test_a", "def test_a1(): pass\ndef test_a2(): pass\n", 1_000
    )
    write_test_file(pytester, "test_b", "def test_b1(): pass\n", 2_000)
    write_test_file(pytester, "test_c", "def test_c1(): pass\n", 3_000)
    return pytester


class TestOrdering:
    def test_first_run_everything_is_new_newest_file_first(
        self, twin, three_files
    ) -> None:
        lines = twin.check("-v", "--nf")
        assert run_order(lines) == [
            "test_c.py::test_c1",
            "test_b.py::test_b1",
            "test_a.py::test_a1",
            "test_a.py::test_a2",
        ]

    def test_new_files_and_tests_first(self, twin, three_files) -> None:
        pytester = three_files
        twin.check("-v")
        # An old new file, and a new test in the oldest file: both run
        # before every known test, newest file first among them.
        write_test_file(pytester, "test_d", "def test_d1(): pass\n", 500)
        write_test_file(
            pytester,
            "test_a",
            "def test_a1(): pass\ndef test_a2(): pass\ndef test_a3(): pass\n",
            1_000,
        )
        lines = twin.check("-v", "--nf")
        assert run_order(lines) == [
            "test_a.py::test_a3",
            "test_d.py::test_d1",
            "test_c.py::test_c1",
            "test_b.py::test_b1",
            "test_a.py::test_a1",
            "test_a.py::test_a2",
        ]

    def test_known_tests_follow_mtime_not_collection_order(
        self, twin, three_files
    ) -> None:
        pytester = three_files
        twin.check("-v")
        os.utime(pytester.path / "test_a.py", (5_000, 5_000))
        lines = twin.check("-v", "--new-first")
        assert run_order(lines) == [
            "test_a.py::test_a1",
            "test_a.py::test_a2",
            "test_c.py::test_c1",
            "test_b.py::test_b1",
        ]

    def test_without_nf_the_order_is_unchanged(self, twin, three_files) -> None:
        twin.check("-v")
        write_test_file(three_files, "test_d", "def test_d1(): pass\n", 9_000)
        lines = twin.check("-v")
        assert run_order(lines)[0] == "test_a.py::test_a1"

    def test_new_parameters_first(self, twin, pytester: pytest.Pytester) -> None:
        source = """
            import pytest

            @pytest.mark.parametrize("n", {params})
            def test_p(n):
                pass

            def test_plain():
                pass
        """
        write_test_file(pytester, "test_p", source.format(params="[1, 2]"), 1_000)
        write_test_file(pytester, "test_q", "def test_q1(): pass\n", 2_000)
        twin.check("-v")
        write_test_file(pytester, "test_p", source.format(params="[1, 2, 3, 4]"), 1_000)
        lines = twin.check("-v", "--nf")
        assert run_order(lines) == [
            "test_p.py::test_p[3]",
            "test_p.py::test_p[4]",
            "test_q.py::test_q1",
            "test_p.py::test_p[1]",
            "test_p.py::test_p[2]",
            "test_p.py::test_plain",
        ]

    @pytest.mark.parametrize("selection", ["--lf", "--ff"])
    def test_combined_with_failure_selection(
        self, twin, pytester: pytest.Pytester, selection: str
    ) -> None:
        write_test_file(
            pytester, "test_a", "def test_a1(): assert 0\ndef test_a2(): pass\n", 1_000
        )
        write_test_file(pytester, "test_b", "def test_b1(): pass\n", 2_000)
        write_test_file(pytester, "test_c", "def test_c1(): assert 0\n", 3_000)
        twin.check("-v")
        write_test_file(pytester, "test_d", "def test_d1(): assert 0\n", 500)
        twin.check("-v", "--nf", selection)
        # And once more, now that test_d is known and has failed.
        lines = twin.check("-v", "--nf", selection)
        if selection == "--lf":
            # test_d.py was skipped by --lf, so it never failed.
            assert run_order(lines) == ["test_c.py::test_c1", "test_a.py::test_a1"]
        else:
            # --nf's order wins; --ff only breaks ties within a file.
            assert run_order(lines) == [
                "test_c.py::test_c1",
                "test_b.py::test_b1",
                "test_a.py::test_a1",
                "test_a.py::test_a2",
                "test_d.py::test_d1",
            ]


class TestStoredNodeIds:
    def test_sorted_list_of_all_ids(self, twin, three_files) -> None:
        twin.check("-v", "--nf")
        expected = [
            "test_a.py::test_a1",
            "test_a.py::test_a2",
            "test_b.py::test_b1",
            "test_c.py::test_c1",
        ]
        path = three_files.path
        assert stored_nodeids(path / twin.OURS_DIR) == expected
        assert stored_nodeids(path / twin.BUILTIN_DIR) == expected

    def test_ids_accumulate_across_runs(self, twin, three_files) -> None:
        pytester = three_files
        twin.check("-v")
        (pytester.path / "test_b.py").unlink()
        write_test_file(pytester, "test_d", "def test_d1(): pass\n", 4_000)
        twin.check("-v", "test_d.py")
        ours = stored_nodeids(pytester.path / twin.OURS_DIR)
        assert ours == stored_nodeids(pytester.path / twin.BUILTIN_DIR)
        assert ours == [
            "test_a.py::test_a1",
            "test_a.py::test_a2",
            "test_b.py::test_b1",
            "test_c.py::test_c1",
            "test_d.py::test_d1",
        ]

    def test_tests_that_are_gone_are_forgotten_after_a_full_run(
        self, pytester: pytest.Pytester
    ) -> None:
        # pytest's own provider keeps them for ever; we track the suite.
        write_test_file(pytester, "test_a", "def test_a1(): pass\n", 1_000)
        write_test_file(pytester, "test_b", "def test_b1(): pass\n", 2_000)
        pytester.runpytest().assert_outcomes(passed=2)
        (pytester.path / "test_b.py").unlink()
        pytester.runpytest("test_a.py").assert_outcomes(passed=1)
        assert stored_nodeids(pytester.path / ".pytest_cache") == [
            "test_a.py::test_a1",
            "test_b.py::test_b1",
        ]
        pytester.runpytest().assert_outcomes(passed=1)
        assert stored_nodeids(pytester.path / ".pytest_cache") == ["test_a.py::test_a1"]

    def test_only_selected_ids_with_lf(self, twin, pytester: pytest.Pytester) -> None:
        write_test_file(pytester, "test_a", "def test_a1(): assert 0\n", 1_000)
        twin.check("-v")
        write_test_file(pytester, "test_b", "def test_b1(): pass\n", 2_000)
        twin.check("-v", "--lf")
        ours = stored_nodeids(pytester.path / twin.OURS_DIR)
        assert ours == stored_nodeids(pytester.path / twin.BUILTIN_DIR)

    def test_not_written_by_collect_only(self, twin, three_files) -> None:
        twin.check("--collect-only", "-q")
        twin.check("--collect-only", "--nf")
        assert not (three_files.path / twin.OURS_DIR / NODEIDS).exists()
        assert not (three_files.path / twin.BUILTIN_DIR / NODEIDS).exists()

    def test_collect_only_adds_nothing_to_an_existing_record(
        self, twin, three_files
    ) -> None:
        twin.check("-q")
        before = stored_nodeids(three_files.path / twin.OURS_DIR)
        write_test_file(three_files, "test_d", "def test_d1(): pass\n", 4_000)
        twin.check("--collect-only", "-q")
        assert stored_nodeids(three_files.path / twin.OURS_DIR) == before

    def test_not_written_by_cache_show(self, pytester: pytest.Pytester) -> None:
        write_test_file(pytester, "test_a", "def test_a1(): pass\n", 1_000)
        pytester.runpytest().assert_outcomes(passed=1)
        write_test_file(pytester, "test_b", "def test_b1(): pass\n", 2_000)
        assert pytester.runpytest("--cache-show").ret == 0
        assert stored_nodeids(pytester.path / ".pytest_cache") == ["test_a.py::test_a1"]


class TestDamagedRecord:
    @pytest.mark.parametrize(
        "stored",
        [
            pytest.param('["test_old.py::test_old", 3]', id="non-string-item"),
            pytest.param('{"test_old.py::test_old": true}', id="mapping"),
            pytest.param('"test_old.py::test_old"', id="string"),
            pytest.param("17", id="number"),
        ],
    )
    def test_warns_and_treats_every_test_as_new(
        self, pytester: pytest.Pytester, stored: str
    ) -> None:
        # Valid, this record would put test_new.py first: it is not in it.
        write_test_file(pytester, "test_old", "def test_old(): pass\n", 3_000)
        write_test_file(pytester, "test_new", "def test_new(): pass\n", 1_000)
        path = pytester.path / ".pytest_cache" / NODEIDS
        path.parent.mkdir(parents=True)
        path.write_text(stored, encoding="utf-8")

        with pytest.warns(pytest.PytestCacheWarning, match="'cache/nodeids'"):
            result = pytester.runpytest("-v", "--nf")

        result.assert_outcomes(passed=2)
        assert run_order(result.outlines) == [
            "test_old.py::test_old",
            "test_new.py::test_new",
        ]
        # The damaged record is replaced by a good one.
        assert stored_nodeids(pytester.path / ".pytest_cache") == [
            "test_new.py::test_new",
            "test_old.py::test_old",
        ]

    def test_unreadable_json_means_no_record(
        self, twin, pytester: pytest.Pytester
    ) -> None:
        write_test_file(pytester, "test_old", "def test_old(): pass\n", 3_000)
        write_test_file(pytester, "test_new", "def test_new(): pass\n", 1_000)
        for cachedir in (twin.OURS_DIR, twin.BUILTIN_DIR):
            path = pytester.path / cachedir / NODEIDS
            path.parent.mkdir(parents=True)
            path.write_bytes(b'["test_old.py::te')
        with pytest.warns(
            pytest.PytestCacheWarning, match=r"'cache/nodeids'.*not valid JSON"
        ):
            lines = twin.check("-v", "--nf")
        assert run_order(lines) == ["test_old.py::test_old", "test_new.py::test_new"]
        # The damaged record was replaced by a good one.
        stored = json.loads(
            (pytester.path / twin.OURS_DIR / NODEIDS).read_text("utf-8")
        )
        assert stored == ["test_new.py::test_new", "test_old.py::test_old"]


class TestConcurrentSessions:
    """Ids another session stores while ours runs survive our write at the end."""

    CONCURRENT = """
        import pytest

        def test_meanwhile(request):
            # What a concurrent pytest session in the same project does at
            # its end, while this session is still running.
            cache = request.config.cache
            stored = cache.get("cache/nodeids", [])
            cache.set("cache/nodeids", sorted(stored + ["elsewhere.py::test_x"]))
    """

    def test_kept_on_the_first_run(self, pytester: pytest.Pytester) -> None:
        write_test_file(pytester, "test_meanwhile", self.CONCURRENT, 1_000)
        pytester.runpytest().assert_outcomes(passed=1)
        assert stored_nodeids(pytester.path / ".pytest_cache") == [
            "elsewhere.py::test_x",
            "test_meanwhile.py::test_meanwhile",
        ]

    def test_kept_when_we_add_ids(self, pytester: pytest.Pytester) -> None:
        write_test_file(pytester, "test_a", "def test_a1(): pass\n", 1_000)
        pytester.runpytest().assert_outcomes(passed=1)
        write_test_file(pytester, "test_meanwhile", self.CONCURRENT, 2_000)
        pytester.runpytest("--nf").assert_outcomes(passed=2)
        assert stored_nodeids(pytester.path / ".pytest_cache") == [
            "elsewhere.py::test_x",
            "test_a.py::test_a1",
            "test_meanwhile.py::test_meanwhile",
        ]

    def test_kept_through_a_conftest(self, pytester: pytest.Pytester) -> None:
        pytester.makeconftest(
            """
            def pytest_collection_finish(session):
                cache = session.config.cache
                stored = cache.get("cache/nodeids", [])
                cache.set("cache/nodeids", sorted(stored + ["other/test_o.py::test_o"]))
            """
        )
        write_test_file(pytester, "test_a", "def test_a1(): pass\n", 1_000)
        pytester.runpytest("--nf").assert_outcomes(passed=1)
        assert stored_nodeids(pytester.path / ".pytest_cache") == [
            "other/test_o.py::test_o",
            "test_a.py::test_a1",
        ]


def _nodeids(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / ".pytest_cache" / "v" / "cache" / "nodeids"
    return json.loads(path.read_text("utf-8"))


def test_whole_suite_run_forgets_deleted_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_1(): pass\ndef test_2(): pass\n")
    pytester.makepyfile(test_b="def test_3(): pass\n")
    pytester.runpytest().assert_outcomes(passed=3)
    assert _nodeids(pytester) == [
        "test_a.py::test_1",
        "test_a.py::test_2",
        "test_b.py::test_3",
    ]

    pytester.path.joinpath("test_b.py").unlink()
    pytester.makepyfile(test_a="def test_1(): pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
    assert _nodeids(pytester) == ["test_a.py::test_1"]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["test_a.py"], id="explicit-path"),
        pytest.param(["--ignore=test_b.py"], id="ignore"),
        pytest.param(["--lf"], id="last-failed"),
    ],
)
def test_partial_runs_keep_ids_they_did_not_collect(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    pytester.makepyfile(test_a="def test_1(): pass\n")
    pytester.makepyfile(test_b="def test_2(): assert 0\n")
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    before = _nodeids(pytester)
    pytester.makepyfile(test_b="def test_2(): pass\n")
    pytester.makepyfile(test_a="def test_1(): pass\ndef test_new(): pass\n")
    pytester.runpytest(*args)
    after = _nodeids(pytester)
    assert set(before) <= set(after)


def test_keyword_deselection_still_counts_as_whole_collection(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_a="def test_1(): pass\ndef test_2(): pass\n")
    pytester.runpytest().assert_outcomes(passed=2)
    pytester.makepyfile(test_a="def test_1(): pass\ndef test_3(): pass\n")
    pytester.runpytest("-k", "test_1").assert_outcomes(passed=1, deselected=1)
    # test_2 is gone; test_3 exists but was deselected: still new for --nf.
    assert _nodeids(pytester) == ["test_a.py::test_1"]


def test_collection_error_prevents_forgetting(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_1(): pass\n", test_b="def test_2(): pass\n")
    pytester.runpytest().assert_outcomes(passed=2)
    pytester.makepyfile(test_b="import nonexistent_module_xyz\n")
    pytester.runpytest("--continue-on-collection-errors")
    assert "test_b.py::test_2" in _nodeids(pytester)
