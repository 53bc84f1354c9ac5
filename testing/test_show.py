"""``--cache-show [GLOB]`` and ``--cache-clear``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytest's own --cache-show stops showing matches outside the cache only
# from pytest 9.2 on; before that there is nothing to compare with.
BUILTIN_CONFINES_GLOBS = pytest.version_tuple >= (9, 2)

SUPPORTING = {"README.md", ".gitignore", "CACHEDIR.TAG"}

# Fills a cache the way projects do: a failure, values of several shapes
# and files in a directory made with cache.mkdir.
PROJECT = """
    def test_store(cache):
        cache.set("myplugin/number", 42)
        cache.set("myplugin/nested/deep", {"b": [1, 2, None], "a": "text"})
        cache.set("other/long", list(range(40)))
        d = cache.mkdir("mydir")
        d.joinpath("data.bin").write_bytes(b"0123456789")
        d.joinpath("sub").mkdir(exist_ok=True)
        d.joinpath("sub", "inner.txt").write_text("abc")

    def test_fails():
        assert 0
"""


def shown(result: pytest.RunResult) -> tuple[str, list[str]]:
    """The directory ``--cache-show`` names and the lines it printed after it."""
    starts = [
        i for i, line in enumerate(result.outlines) if line.startswith("cachedir: /")
    ]
    assert starts, result.outlines
    start = starts[-1]
    body = [
        line
        for line in result.outlines[start + 1 :]
        if line and not line.startswith("=")
    ]
    return result.outlines[start].removeprefix("cachedir: "), body


def check_show(twin, *args: str) -> list[str]:
    """``--cache-show`` under both providers: same lines, exit code 0."""
    result = twin.run("--cache-show", *args)
    ours_dir, ours = shown(result.ours)
    builtin_dir, builtin = shown(result.builtin)
    assert ours == builtin, "\n".join(["crosscache:", *ours, "", "builtin:", *builtin])
    assert Path(ours_dir) == twin.pytester.path / twin.OURS_DIR
    assert Path(builtin_dir) == twin.pytester.path / twin.BUILTIN_DIR
    assert result.ours.ret == result.builtin.ret == 0
    return ours


@pytest.fixture
def filled(twin) -> pytest.Pytester:
    """Both caches filled by one run of :data:`PROJECT`, plus an unreadable value."""
    pytester = twin.pytester
    pytester.makepyfile(test_project=PROJECT)
    twin.check("-q")
    for cachedir in (twin.OURS_DIR, twin.BUILTIN_DIR):
        (pytester.path / cachedir / "v" / "myplugin" / "broken").write_bytes(
            b'{"half": '
        )
    return pytester


class TestShow:
    def test_everything(self, twin, filled) -> None:
        lines = check_show(twin)
        assert lines == [
            "----------------------------- cache values for '*' -----------------------------",
            "cache/lastfailed contains:",
            "  {'test_project.py::test_fails': True}",
            "cache/nodeids contains:",
            "  ['test_project.py::test_fails', 'test_project.py::test_store']",
            "myplugin/broken contains unreadable content, will be ignored",
            "myplugin/nested/deep contains:",
            "  {'a': 'text', 'b': [1, 2, None]}",
            "myplugin/number contains:",
            "  42",
            "other/long contains:",
            "  [0,",
            *[f"   {i}," for i in range(1, 39)],
            "   39]",
            "-------------------------- cache directories for '*' ---------------------------",
            "d/mydir/data.bin is a file of length 10",
            "d/mydir/sub/inner.txt is a file of length 3",
        ]

    @pytest.mark.parametrize(
        "glob",
        [
            "myplugin/*",
            "myplugin/**/*",
            "*/number",
            "cache/*",
            "*deep",
            "mydir/*",
            "nothing*",
        ],
    )
    def test_glob(self, twin, filled, glob: str) -> None:
        lines = check_show(twin, glob)
        assert lines[0].strip("-").strip() == f"cache values for {glob!r}"

    def test_glob_selects(self, twin, filled) -> None:
        lines = check_show(twin, "myplugin/*")
        assert [line for line in lines if "contain" in line] == [
            "myplugin/broken contains unreadable content, will be ignored",
            "myplugin/number contains:",
        ]

    def test_only_the_first_glob_counts(self, twin, filled) -> None:
        lines = check_show(twin, "other/*", "--cache-show", "cache/*")
        assert "other/long contains:" in lines

    @pytest.mark.parametrize("glob", ["../../*", "cache/../../*"])
    def test_glob_with_parent_shows_nothing_outside(
        self, twin, filled, glob: str
    ) -> None:
        filled.path.joinpath("outside.txt").write_text("not cache")
        filled.path.joinpath("v").mkdir()
        filled.path.joinpath("v", "outside").write_text("1")
        if BUILTIN_CONFINES_GLOBS:
            lines = check_show(twin, glob)
        else:
            _, lines = shown(twin.run("--cache-show", glob).ours)
        assert not any("outside" in line or "test_project" in line for line in lines)

    @pytest.mark.parametrize("glob", ["../*", "*/../*", "../**/*"])
    def test_glob_with_parent_names_values_by_their_keys(
        self, twin, filled, glob: str
    ) -> None:
        """A documented difference: values are named by key, not by the path matched.

        pytest prints e.g. ``myplugin/nested/../broken``; we print the key
        ``myplugin/broken`` that the value is stored and read under.  Both
        show nothing outside the cache.
        """
        filled.path.joinpath("outside.txt").write_text("not cache")
        filled.path.joinpath("v").mkdir()
        filled.path.joinpath("v", "outside").write_text("1")
        result = twin.run("--cache-show", glob)
        _, ours = shown(result.ours)
        _, builtin = shown(result.builtin)
        assert not any("outside" in line for line in ours)

        def keys(lines: list[str]) -> set[str]:
            return {
                # pytest may name v/x as "../v/x" when the glob climbs.
                os.path.normpath(line.split(" contain")[0]).removeprefix("../v/")
                for line in lines
                if " contain" in line
            }

        if BUILTIN_CONFINES_GLOBS:
            assert keys(ours) == keys(builtin)
        named = [line.split(" ")[0] for line in ours if " contain" in line]
        assert all(".." not in name for name in named)
        assert len(named) == len(set(named))
        assert result.ours.ret == result.builtin.ret == 0

    def test_without_d_directory(self, twin, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_fails(): assert 0")
        twin.check("-q")
        lines = check_show(twin)
        assert not any("cache directories" in line for line in lines)

    def test_cache_is_empty(self, twin, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_ok(): pass")
        lines = check_show(twin)
        assert lines == ["cache is empty"]
        assert not (pytester.path / twin.OURS_DIR).exists()
        assert not (pytester.path / twin.BUILTIN_DIR).exists()

    def test_nothing_is_collected_or_run(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_fails(): assert 0")
        pytester.runpytest()
        before = sorted(p.relative_to(pytester.path) for p in pytester.path.rglob("*"))
        result = pytester.runpytest("--cache-show")
        assert result.ret == 0
        result.stdout.no_fnmatch_line("*test_fails*FAILED*")
        result.stdout.fnmatch_lines(["*no tests ran*"])
        after = sorted(p.relative_to(pytester.path) for p in pytester.path.rglob("*"))
        # Nothing written, no lock files nor temporary files left.
        assert [p for p in after if "__pycache__" not in str(p)] == [
            p for p in before if "__pycache__" not in str(p)
        ]

    def test_help_is_not_show(self, pytester: pytest.Pytester) -> None:
        result = pytester.runpytest("--cache-show", "--help")
        assert result.ret == 0
        result.stdout.fnmatch_lines(["*--cache-show*"])
        result.stdout.no_fnmatch_line("cachedir: /*")


class TestClear:
    def test_removes_values_and_dirs_keeps_supporting_files(self, twin, filled) -> None:
        extra = {"notes.txt"}
        for cachedir in (twin.OURS_DIR, twin.BUILTIN_DIR):
            (filled.path / cachedir / "notes.txt").write_text("mine")
        lines = check_show(twin, "--cache-clear")
        assert lines == [
            "----------------------------- cache values for '*' -----------------------------"
        ]
        for cachedir in (twin.OURS_DIR, twin.BUILTIN_DIR):
            root = filled.path / cachedir
            assert not (root / "d").exists()
            values = root / "v"
            assert not values.exists() or not any(
                p.is_file() for p in values.rglob("*")
            )
            names = {p.name for p in root.iterdir()}
            assert SUPPORTING | extra <= names
            assert (root / "notes.txt").read_text() == "mine"

    def test_then_the_run_stores_afresh(self, twin, filled) -> None:
        lines = twin.check("-v", "--cache-clear", "--lf")
        # Nothing is known any more: --lf runs everything.
        assert any(
            line.startswith("test_project.py::test_store PASSED") for line in lines
        )
        lines = check_show(twin)
        assert (
            "myplugin/broken contains unreadable content, will be ignored" not in lines
        )
        assert "cache/lastfailed contains:" in lines
        assert "d/mydir/data.bin is a file of length 10" in lines

    def test_without_cache_dir(self, twin, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_ok(): pass")
        assert check_show(twin, "--cache-clear") == ["cache is empty"]
        twin.check("--cache-clear")
        for cachedir in (twin.OURS_DIR, twin.BUILTIN_DIR):
            assert {p.name for p in (pytester.path / cachedir).iterdir()} >= SUPPORTING


def test_keys_in_path_order(twin) -> None:
    """Keys sort by path components, as paths do, not as plain strings."""
    twin.pytester.makepyfile(
        """
        def test_store(cache):
            for key in ("a-b", "a/b", "a.c/x", "a/b0", "ab"):
                cache.set(key, key)

        def test_fails():
            assert 0
        """
    )
    twin.check("-q")
    lines = check_show(twin)
    keys = [line.split()[0] for line in lines if line.endswith("contains:")]
    assert keys[:5] == ["a/b", "a/b0", "a-b", "a.c/x", "ab"]


def test_first_run_without_failures(twin) -> None:
    """A run where everything passes leaves the same values behind."""
    twin.pytester.makepyfile("def test_ok(): pass")
    twin.check("-q")
    assert check_show(twin) == [
        "----------------------------- cache values for '*' -----------------------------",
        "cache/nodeids contains:",
        "  ['test_first_run_without_failures.py::test_ok']",
    ]
