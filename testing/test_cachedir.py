"""Creation of the cache directory and its supporting files."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_crosscache import Cache

SUPPORTING = {"README.md", ".gitignore", "CACHEDIR.TAG"}
# Fixed by the Cache Directory Tagging Specification (https://bford.info/cachedir/).
TAG_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"


def assert_complete(cachedir: Path) -> None:
    """``cachedir`` has the supporting files pytest's own cache provider writes."""
    assert cachedir.is_dir()
    assert {p.name for p in cachedir.iterdir()} >= SUPPORTING
    gitignore = (cachedir / ".gitignore").read_text(encoding="utf-8")
    assert "*" in gitignore.splitlines()
    tag = (cachedir / "CACHEDIR.TAG").read_bytes()
    assert tag.startswith(TAG_SIGNATURE.encode("ascii"))
    readme = (cachedir / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# ")
    assert "version control" in readme or "commit" in readme


def leftovers(parent: Path) -> list[str]:
    """Hidden staging directories or temporary files left next to a cache."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


class TestLazyCreation:
    def test_nothing_before_the_first_write(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "c")
        assert cache.get("plugin/key", None) is None
        with pytest.raises(ValueError, match=r"outside|escape"):
            cache.get("../x", None)
        assert list(tmp_path.iterdir()) == []

    def test_set_creates_it_complete(self, tmp_path: Path) -> None:
        cachedir = tmp_path / "c"
        Cache(cachedir).set("plugin/key", 1)
        assert_complete(cachedir)
        assert (cachedir / "v" / "plugin" / "key").is_file()
        assert leftovers(tmp_path) == []

    def test_mkdir_creates_it_complete(self, tmp_path: Path) -> None:
        cachedir = tmp_path / "c"
        made = Cache(cachedir).mkdir("plugin")
        assert made == cachedir / "d" / "plugin"
        assert made.is_dir()
        assert_complete(cachedir)

    def test_missing_parents_are_created(self, tmp_path: Path) -> None:
        cachedir = tmp_path / "deep" / "er" / "c"
        Cache(cachedir).set("k", "v")
        assert_complete(cachedir)

    def test_session_creates_it(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile("def test_fails(): assert 0")
        result = pytester.runpytest()
        result.assert_outcomes(failed=1)
        cachedir = pytester.path / ".pytest_cache"
        assert_complete(cachedir)
        lastfailed = json.loads((cachedir / "v" / "cache" / "lastfailed").read_text())
        assert lastfailed == {"test_session_creates_it.py::test_fails": True}

    def test_same_supporting_files_as_builtin(self, pytester: pytest.Pytester) -> None:
        """The parts tools rely on match pytest's own: the tag and the ignore rule."""
        pytester.makepyfile("def test_fails(): assert 0")
        pytester.runpytest("-o", "cache_dir=ours").assert_outcomes(failed=1)
        pytester.runpytest(
            "-p", "no:crosscache", "-o", "cache_dir=builtin"
        ).assert_outcomes(failed=1)
        ours, builtin = pytester.path / "ours", pytester.path / "builtin"
        assert {p.name for p in builtin.iterdir()} <= {
            p.name for p in ours.iterdir()
        } | {".locks"}
        assert_complete(builtin)
        assert (ours / "CACHEDIR.TAG").read_text().splitlines()[0] == (
            builtin / "CACHEDIR.TAG"
        ).read_text().splitlines()[0]
        rules = [
            line
            for line in (ours / ".gitignore").read_text().splitlines()
            if not line.startswith("#")
        ]
        assert rules == ["*"]


class TestExistingDirectory:
    def test_supporting_files_not_added(self, tmp_path: Path) -> None:
        """A directory the user made (or an old pytest left) is not touched."""
        cachedir = tmp_path / "c"
        cachedir.mkdir()
        (cachedir / "mine.txt").write_text("keep me")
        cache = Cache(cachedir)
        cache.set("plugin/key", [1])
        cache.mkdir("plugin")
        names = {p.name for p in cachedir.iterdir()}
        assert not names & SUPPORTING
        assert {"mine.txt", "v", "d"} <= names
        assert (cachedir / "mine.txt").read_text() == "keep me"
        assert leftovers(tmp_path) == []

    def test_existing_supporting_files_kept(self, tmp_path: Path) -> None:
        cachedir = tmp_path / "c"
        cachedir.mkdir()
        (cachedir / ".gitignore").write_text("custom\n")
        Cache(cachedir).set("k", 1)
        assert (cachedir / ".gitignore").read_text() == "custom\n"
        assert not (cachedir / "README.md").exists()

    def test_session_does_not_add_them(self, pytester: pytest.Pytester) -> None:
        cachedir = pytester.mkdir(".pytest_cache")
        pytester.makepyfile("def test_fails(): assert 0")
        pytester.runpytest().assert_outcomes(failed=1)
        assert not {p.name for p in cachedir.iterdir()} & SUPPORTING
        assert (cachedir / "v" / "cache" / "lastfailed").is_file()


CREATE_CONCURRENTLY = """
import os, sys, time
from pathlib import Path
from pytest_crosscache import Cache

cachedir, start, index = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
# Start together, so that the directory creations really overlap.
while not start.exists():
    time.sleep(0.001)
cache = Cache(cachedir)
if int(index) % 2:
    cache.mkdir(f"dir{index}")
else:
    cache.set(f"proc/{index}", int(index))
"""


def test_concurrent_creation(tmp_path: Path) -> None:
    """Many processes creating the same cache leave one complete directory."""
    script = tmp_path / "create.py"
    script.write_text(CREATE_CONCURRENTLY, encoding="utf-8")
    cachedir = tmp_path / "area" / "c"
    start = tmp_path / "start"
    n = 8
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(cachedir), str(start), str(i)]
        )
        for i in range(n)
    ]
    start.touch()
    assert [p.wait(timeout=60) for p in procs] == [0] * n

    assert_complete(cachedir)
    # Only the one renamed into place survives: no staging dirs, no files
    # from a loser of the race left inside.
    assert leftovers(cachedir.parent) == []
    assert [p.name for p in cachedir.parent.iterdir()] == ["c"]
    cache = Cache(cachedir)
    for i in range(n):
        if i % 2:
            assert (cachedir / "d" / f"dir{i}").is_dir()
        else:
            assert cache.get(f"proc/{i}", None) == i
    assert not [p for p in cachedir.rglob("*") if "crosscache" in p.name]


UMASK_PROBE = """
import os, sys
from pathlib import Path
from pytest_crosscache import Cache

os.umask(int(sys.argv[2], 8))
cache = Cache(Path(sys.argv[1]))
cache.set("plugin/key", 1)
cache.mkdir("plugin")
"""


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077, 0o027])
def test_permissions_follow_umask(tmp_path: Path, umask: int) -> None:
    """The same modes as a plain ``mkdir`` and ``open(..., "w")`` would give."""
    cachedir = tmp_path / "c"
    # umask is per process: set it in a child, never in the test runner.
    subprocess.run(
        [sys.executable, "-c", UMASK_PROBE, str(cachedir), oct(umask)[2:]], check=True
    )

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    dir_mode, file_mode = 0o777 & ~umask, 0o666 & ~umask
    for d in (
        cachedir,
        cachedir / "v",
        cachedir / "v" / "plugin",
        cachedir / "d" / "plugin",
    ):
        assert mode(d) == dir_mode, (d, oct(mode(d)))
    for f in (
        *(cachedir / name for name in SUPPORTING),
        cachedir / "v" / "plugin" / "key",
    ):
        assert mode(f) == file_mode, (f, oct(mode(f)))


def test_permissions_match_builtin(pytester: pytest.Pytester) -> None:
    """Under a session, both providers give the cache the same modes."""
    pytester.makepyfile("def test_fails(): assert 0")
    script = textwrap.dedent(
        """
        import os, sys, pytest
        os.umask(0o027)
        raise SystemExit(pytest.main(sys.argv[1:]))
        """
    )
    for plugin, name in ((), "ours"), (("-p", "no:crosscache"), "builtin"):
        pytester.run(sys.executable, "-c", script, *plugin, "-o", f"cache_dir={name}")

    def modes(top: Path) -> dict[str, int]:
        return {
            p.relative_to(top).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in [top, *top.rglob("*")]
            if ".locks" not in p.parts and p.name != "README.md"
        }

    ours, builtin = modes(pytester.path / "ours"), modes(pytester.path / "builtin")
    shared = ours.keys() & builtin.keys()
    assert {"v/cache/lastfailed", "CACHEDIR.TAG", ".gitignore"} <= shared
    assert {k: ours[k] for k in shared} == {k: builtin[k] for k in shared}
    assert ours["."] == 0o750
