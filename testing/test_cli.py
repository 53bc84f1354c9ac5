"""The ``crosscache`` command: discovery, every subcommand, exit statuses.

Most tests call :func:`pytest_crosscache.cli.main` in-process on a project
made by ``pytester`` and real pytest runs; the acceptance tests run the
installed ``crosscache`` script and ``python -m pytest_crosscache`` as
subprocesses, as CI jobs would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Cli
from pytest_crosscache import Cache
from pytest_crosscache.selection.lastfailed import LASTFAILED_KEY
from pytest_crosscache.selection.newfirst import NODEIDS_KEY

FAILING_PROJECT = {
    "test_a": """
        def test_ok(): pass
        def test_broken(): assert 0
        """,
    "test_b": """
        import pytest
        @pytest.mark.parametrize("i", [1, 2])
        def test_param(i): assert i == 0
        def test_fine(): pass
        """,
}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def failing(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project whose last run had three failures in two files."""
    pytester.makepyfile(**FAILING_PROJECT)
    pytester.runpytest().assert_outcomes(passed=2, failed=3)
    return pytester


def age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_pytest_never_imported() -> None:
    """The command's speed comes from not importing pytest; keep it so."""
    code = (
        "import sys; from pytest_crosscache.cli import main; "
        "main(['--cache-dir', sys.argv[1], 'show']); "
        "print(sorted(m for m in sys.modules if 'pytest' in m and 'crosscache' not in m))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, os.devnull],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


class TestShow:
    def test_table(self, failing: pytest.Pytester, cli: Cli) -> None:
        status, out, err = cli("show")
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"cachedir: {failing.path / '.pytest_cache'}"
        assert lines[1].split() == ["KEY", "SIZE", "AGE"]
        assert lines[2].split()[0] == LASTFAILED_KEY
        assert lines[2].split()[-1].endswith("s")
        assert lines[3].split()[0] == NODEIDS_KEY
        assert lines[-1] == "2 values"

    def test_json_parses_and_holds_lastfailed(
        self, failing: pytest.Pytester, cli: Cli
    ) -> None:
        status, out, _ = cli("show", "--json")
        assert status == 0
        data = json.loads(out)
        assert set(data) == {LASTFAILED_KEY, NODEIDS_KEY}
        entry = data[LASTFAILED_KEY]
        assert entry["value"] == {
            "test_a.py::test_broken": True,
            "test_b.py::test_param[1]": True,
            "test_b.py::test_param[2]": True,
        }
        path = failing.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
        assert entry["size"] == path.stat().st_size
        assert entry["modified"] == pytest.approx(path.stat().st_mtime)
        assert 0 <= entry["age"] < 600

    def test_glob_and_unreadable_and_dirs(
        self, pytester: pytest.Pytester, cli: Cli
    ) -> None:
        cache = Cache(pytester.path / ".pytest_cache")
        cache.set("app/one", 1)
        cache.set("app/two", {"x": "é"})
        cache.set("other/three", 3)
        (cache.cachedir / "v" / "app" / "two").write_text("{broken")
        (cache.mkdir("app") / "data.bin").write_bytes(b"x" * 2048)
        status, out, _ = cli("show", "t*")
        assert status == 0
        assert "app/one" not in out
        assert "app/two  (not valid JSON)" in out
        assert "other/three" in out
        status, out, _ = cli("show", "--json", "t*")
        data = json.loads(out)
        assert data["app/two"] == {
            "value": None,
            "size": 7,
            "modified": data["app/two"]["modified"],
            "age": data["app/two"]["age"],
            "error": "not valid JSON",
        }
        status, out, _ = cli("show", "*.bin")
        assert "d/app/data.bin" in out
        assert "2.0 KiB" in out

    def test_empty(self, pytester: pytest.Pytester, cli: Cli) -> None:
        assert cli("show") == (
            0,
            f"cachedir: {pytester.path / '.pytest_cache'}\ncache is empty\n",
            "",
        )
        assert cli("show", "--json") == (0, "{}\n", "")


class TestGetSet:
    def test_round_trip_readable_by_pytest(
        self, pytester: pytest.Pytester, cli: Cli
    ) -> None:
        assert cli("set", "app/config", '{"retries": 3, "name": "ü"}') == (0, "", "")
        status, out, _ = cli("get", "app/config")
        assert status == 0
        assert json.loads(out) == {"retries": 3, "name": "ü"}
        pytester.makepyfile(
            """
            def test_reads(cache):
                assert cache.get("app/config", None) == {"retries": 3, "name": "ü"}
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)
        pytester.runpytest("-p", "no:crosscache").assert_outcomes(passed=1)

    def test_set_from_stdin(
        self, pytester: pytest.Pytester, cli: Cli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO("[1, 2]\n"))
        assert cli("set", "app/list", "-")[0] == 0
        assert Cache(pytester.path / ".pytest_cache").get("app/list", None) == [1, 2]

    def test_unknown_key(self, pytester: pytest.Pytester, cli: Cli) -> None:
        status, out, err = cli("get", "app/missing")
        assert (status, out) == (1, "")
        assert "no value stored under key 'app/missing'" in err

    def test_unreadable_value(self, pytester: pytest.Pytester, cli: Cli) -> None:
        cache = Cache(pytester.path / ".pytest_cache")
        cache.set("app/v", 1)
        (cache.cachedir / "v" / "app" / "v").write_text("{")
        status, _, err = cli("get", "app/v")
        assert status == 1
        assert "'app/v' is not valid JSON" in err

    @pytest.mark.parametrize(
        ("text", "where"),
        [
            ('{"a": 1,}', "line 1 column 9 (char 8)"),
            ("[1,\n 2", "line 2 column 3 (char 6)"),
            ("", "line 1 column 1 (char 0)"),
            ("not json", "line 1 column 1 (char 0)"),
        ],
    )
    def test_bad_json_names_the_position(
        self, pytester: pytest.Pytester, cli: Cli, text: str, where: str
    ) -> None:
        status, _, err = cli("set", "app/v", text)
        assert status == 2
        assert err.startswith("crosscache: error: invalid JSON for key 'app/v': ")
        assert where in err
        assert not (pytester.path / ".pytest_cache").exists()

    @pytest.mark.parametrize(
        ("key", "message"),
        [
            ("../escape", "resolves outside"),
            ("/abs", "is absolute"),
            ("", "is empty"),
            ("a/" + "x" * 300, "longer than 255 bytes"),
            ("a/b.crosscache-tmp", "reserved"),
        ],
    )
    @pytest.mark.parametrize("command", ["get", "set"])
    def test_invalid_keys(
        self, pytester: pytest.Pytester, cli: Cli, command: str, key: str, message: str
    ) -> None:
        args = [command, key] + (["1"] if command == "set" else [])
        status, out, err = cli(*args)
        assert (status, out) == (2, "")
        assert err.startswith("crosscache: error: cache key")
        assert message in err


class TestClear:
    def test_everything(self, failing: pytest.Pytester, cli: Cli) -> None:
        cache = Cache(failing.path / ".pytest_cache")
        cache.mkdir("plugin")
        assert cli("clear")[0] == 0
        assert list(cache.backend.keys()) == []
        assert not (cache.cachedir / "d").exists()
        # Like --cache-clear: the directory and its supporting files stay.
        assert (cache.cachedir / "CACHEDIR.TAG").exists()
        failing.runpytest("--lf").assert_outcomes(passed=2, failed=3)

    def test_glob(self, pytester: pytest.Pytester, cli: Cli) -> None:
        cache = Cache(pytester.path / ".pytest_cache")
        for key in ("app/a", "app/b", "keep/c"):
            cache.set(key, 1)
        assert cli("clear", "[ab]") == (0, "removed 2 values\n", "")
        assert list(cache.backend.keys()) == ["keep/c"]


class TestLastFailed:
    def test_grouped_by_file(self, failing: pytest.Pytester, cli: Cli) -> None:
        status, out, _ = cli("lf")
        assert status == 0
        assert out.splitlines() == [
            "test_a.py: 1 failed",
            "  test_a.py::test_broken",
            "test_b.py: 2 failed",
            "  test_b.py::test_param[1]",
            "  test_b.py::test_param[2]",
            "3 failures in 2 files",
        ]
        status, out, _ = cli("lf", "--json")
        assert json.loads(out) == {
            "test_a.py": ["test_a.py::test_broken"],
            "test_b.py": ["test_b.py::test_param[1]", "test_b.py::test_param[2]"],
        }

    def test_collection_errors(self, pytester: pytest.Pytester, cli: Cli) -> None:
        pytester.makepyfile(test_bad="import nonexistent_module_xyz")
        pytester.runpytest().assert_outcomes(errors=1)
        status, out, _ = cli("lf")
        assert status == 0
        assert out.splitlines() == [
            "test_bad.py: 1 failed",
            "  test_bad.py  (collection error)",
            "1 failure in 1 file",
        ]

    def test_none(self, pytester: pytest.Pytester, cli: Cli) -> None:
        assert cli("lf") == (0, "no failures recorded\n", "")

    def test_damaged(self, pytester: pytest.Pytester, cli: Cli) -> None:
        Cache(pytester.path / ".pytest_cache").set(LASTFAILED_KEY, [1])
        status, _, err = cli("lf")
        assert status == 1
        assert "'cache/lastfailed' is damaged" in err


class TestPrune:
    def test_older_than(self, pytester: pytest.Pytester, cli: Cli) -> None:
        cache = Cache(pytester.path / ".pytest_cache")
        for key, seconds in [
            ("app/old", 8 * 86400),
            ("app/new", 3600),
            ("x/mid", 13 * 3600),
        ]:
            cache.set(key, 1)
            age(cache.cachedir / "v" / key, seconds)
        assert cli("prune", "--older-than", "7d", "-n") == (
            0,
            "app/old\nwould remove 1 value\n",
            "",
        )
        assert len(list(cache.backend.keys())) == 3
        assert cli("prune", "--older-than", "12h") == (
            0,
            "app/old\nx/mid\nremoved 2 values\n",
            "",
        )
        assert list(cache.backend.keys()) == ["app/new"]
        assert cli("prune", "--older-than", "30m", "other*")[1] == "removed 0 values\n"
        assert cli("prune", "--older-than", "45s")[1] == "app/new\nremoved 1 value\n"

    @pytest.mark.parametrize("bad", ["7", "7x", "d", "-1d", "1d 2h", "1.d"])
    def test_bad_duration(self, pytester: pytest.Pytester, cli: Cli, bad: str) -> None:
        status, _, err = cli("prune", f"--older-than={bad}")
        assert status == 2
        assert "invalid duration" in err

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("45s", 45),
            ("30m", 1800),
            ("12h", 43200),
            ("7d", 604800),
            ("1h30m", 5400),
            ("2w", 1209600),
            ("1.5h", 5400),
        ],
    )
    def test_durations(self, text: str, seconds: float) -> None:
        from pytest_crosscache.cli.format import parse_duration

        assert parse_duration(text) == seconds


class TestUsage:
    @pytest.mark.parametrize(
        "args",
        [
            [],
            ["nope"],
            ["get"],
            ["set", "k"],
            ["merge", "a"],
            ["prune"],
            ["show", "--bogus"],
        ],
    )
    def test_argparse_errors(
        self, pytester: pytest.Pytester, cli: Cli, args: list[str]
    ) -> None:
        status, _, err = cli(*args)
        assert status == 2
        assert "usage: crosscache" in err

    def test_options_after_the_command(
        self, pytester: pytest.Pytester, cli: Cli
    ) -> None:
        Cache(pytester.path / "elsewhere").set("app/v", 5)
        assert cli("--cache-dir", "elsewhere", "get", "app/v")[1] == "5\n"
        assert cli("get", "app/v", "--cache-dir", "elsewhere")[1] == "5\n"

    def test_malformed_config(self, pytester: pytest.Pytester, cli: Cli) -> None:
        pytester.makefile(".cfg", setup="[pytest]\ncache_dir = x\n")
        status, _, err = cli("show")
        assert status == 2
        assert "[tool:pytest]" in err

    def test_bad_lock_timeout(self, pytester: pytest.Pytester, cli: Cli) -> None:
        pytester.makeini("[pytest]\ncache_lock_timeout = soon\n")
        status, _, err = cli("show")
        assert status == 2
        assert "cache_lock_timeout" in err

    def test_version(self, cli: Cli) -> None:
        from pytest_crosscache import __version__

        status, out, _ = cli("--version")
        assert (status, out) == (0, f"crosscache {__version__}\n")


# Layouts as (files, directory to run in, extra pytest/crosscache args).
LAYOUTS = {
    "pytest.ini above": (
        {"pytest.ini": "[pytest]\ncache_dir = custom\n", "sub/deep/x.txt": ""},
        "sub/deep",
        [],
    ),
    "pytest.ini without section beats pyproject": (
        {
            "pytest.ini": "",
            "pyproject.toml": '[tool.pytest.ini_options]\ncache_dir = "pp"\n',
        },
        ".",
        [],
    ),
    "pyproject ini_options beats tox.ini": (
        {
            "pyproject.toml": '[tool.pytest.ini_options]\ncache_dir = "pp"\n',
            "tox.ini": "[pytest]\ncache_dir = tox\n",
        },
        ".",
        [],
    ),
    "pyproject native table": (
        {"pyproject.toml": '[tool.pytest]\ncache_dir = "native"\n'},
        ".",
        [],
    ),
    "pytest.toml": (
        {
            "pytest.toml": '[pytest]\ncache_dir = "fromtoml"\n',
            "pytest.ini": "[pytest]\ncache_dir = ini\n",
        },
        ".",
        [],
    ),
    "setup.cfg when tox.ini has no section": (
        {
            "tox.ini": "[tox]\nenvlist = py\n",
            "setup.cfg": "[tool:pytest]\ncache_dir = cfg\n",
        },
        ".",
        [],
    ),
    "nearest file wins": (
        {
            "pytest.ini": "[pytest]\ncache_dir = outer\n",
            "sub/tox.ini": "[pytest]\ncache_dir = inner\n",
        },
        "sub",
        [],
    ),
    "bare pyproject is only a fallback": (
        {
            "sub/pyproject.toml": "[project]\nname = 'x'\n",
            "tox.ini": "[pytest]\ncache_dir = up\n",
        },
        "sub",
        [],
    ),
    "bare pyproject marks the rootdir": (
        {"sub/pyproject.toml": "[project]\nname = 'x'\n", "sub/a/x.txt": ""},
        "sub/a",
        [],
    ),
    "setup.py marks the rootdir": ({"setup.py": "", "sub/x.txt": ""}, "sub", []),
    "absolute and expanded": (
        {"pytest.ini": "[pytest]\ncache_dir = $CROSSCACHE_TEST_DIR/c\n"},
        ".",
        [],
    ),
    "home": ({"pytest.ini": "[pytest]\ncache_dir = ~/c\n"}, ".", []),
    "tox env dir default": ({"tox.ini": "[pytest]\naddopts = -q\n"}, ".", ["TOX"]),
    "rootdir option": (
        {"pytest.ini": "[pytest]\ncache_dir = rel\n", "other/x.txt": ""},
        ".",
        ["--rootdir", "other"],
    ),
    "config file option": (
        {"ci/custom.ini": "[pytest]\ncache_dir = c\n", "sub/x.txt": ""},
        "sub",
        ["-c", "../ci/custom.ini"],
    ),
    "config file toml": (
        {"ci/conf.toml": '[pytest]\ncache_dir = "t"\n', "sub/x.txt": ""},
        "sub",
        ["-c", "../ci/conf.toml"],
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_discovery_agrees_with_pytest(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    layout: str,
) -> None:
    files, where, extra = LAYOUTS[layout]
    for name, content in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    monkeypatch.setenv("CROSSCACHE_TEST_DIR", str(pytester.path / "expanded"))
    monkeypatch.setenv("HOME", str(pytester.path / "home"))
    monkeypatch.delenv("TOX_ENV_DIR", raising=False)
    if extra == ["TOX"]:
        extra = []
        monkeypatch.setenv("TOX_ENV_DIR", str(pytester.path / ".tox" / "py"))
    monkeypatch.chdir(pytester.path / where)
    pytest_args = list(extra)
    if extra[:1] == ["--rootdir"]:
        # crosscache --rootdir DIR searches the configuration from DIR too.
        pytest_args.append(extra[1])
    config = pytester.parseconfigure(*pytest_args)
    expected = config.cache._cachedir  # type: ignore[union-attr]
    status, out, err = cli(*extra, "show")
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == f"cachedir: {expected}"


def run_command(
    pytester: pytest.Pytester, *args: str, script: bool = False
) -> subprocess.CompletedProcess[str]:
    """The command as a user or CI job runs it: a separate process."""
    if script:
        found = Path(sys.executable).with_name("crosscache")
        assert found.exists(), (
            "the crosscache script is not installed; pip install -e ."
        )
        command = [str(found)]
    else:
        command = [sys.executable, "-m", "pytest_crosscache"]
    return subprocess.run(
        [*command, *args], cwd=pytester.path, capture_output=True, text=True
    )


class TestAcceptance:
    def test_installed_script_on_a_failing_project(
        self, failing: pytest.Pytester
    ) -> None:
        shown = run_command(failing, "show", "--json", script=True)
        assert shown.returncode == 0, shown.stderr
        assert set(json.loads(shown.stdout)[LASTFAILED_KEY]["value"]) == {
            "test_a.py::test_broken",
            "test_b.py::test_param[1]",
            "test_b.py::test_param[2]",
        }
        lf = run_command(failing, "lf", script=True)
        assert lf.returncode == 0
        assert "test_a.py::test_broken" in lf.stdout
        assert lf.stdout.splitlines()[-1] == "3 failures in 2 files"

    def test_exit_statuses_as_a_process(self, pytester: pytest.Pytester) -> None:
        missing = run_command(pytester, "get", "app/none")
        assert missing.returncode == 1
        assert "app/none" in missing.stderr
        assert missing.stdout == ""
        bad = run_command(pytester, "set", "app/v", "{")
        assert bad.returncode == 2
        assert "char 1" in bad.stderr

    def test_merged_shards_drive_lf(self, pytester: pytest.Pytester) -> None:
        """Two CI shards' caches merged into a third: --lf there runs the union."""
        pytester.makepyfile(
            test_one="""
                def test_1a(): pass
                def test_1b(): assert 0
                """,
            test_two="""
                def test_2a(): assert 0
                def test_2b(): pass
                """,
            test_three="""
                def test_3a(): pass
                """,
        )
        pytester.runpytest("-o", "cache_dir=shard1", "test_one.py").assert_outcomes(
            passed=1, failed=1
        )
        pytester.runpytest(
            "-o", "cache_dir=shard2", "test_two.py", "test_three.py"
        ).assert_outcomes(passed=2, failed=1)
        Cache(pytester.path / "shard1").set("app/shared", "from shard 1")
        Cache(pytester.path / "shard2").mkdir("plugin").joinpath("f.txt").write_text(
            "2"
        )

        merged = run_command(
            pytester, "merge", "--into", ".pytest_cache", "shard1", "shard2"
        )
        assert merged.returncode == 0, merged.stderr
        assert "2 known failures" in merged.stdout

        result = pytester.runpytest("--lf", "-v")
        result.assert_outcomes(failed=2)
        result.stdout.fnmatch_lines(["run-last-failure: rerun previous 2 failures*"])
        result.stdout.fnmatch_lines(["*test_1b FAILED*", "*test_2a FAILED*"])
        cache = Cache(pytester.path / ".pytest_cache")
        assert cache.get(NODEIDS_KEY, None) == sorted(
            [
                "test_one.py::test_1a",
                "test_one.py::test_1b",
                "test_three.py::test_3a",
                "test_two.py::test_2a",
                "test_two.py::test_2b",
            ]
        )
        assert cache.get("app/shared", None) == "from shard 1"
        assert (cache.cachedir / "d" / "plugin" / "f.txt").read_text() == "2"
        assert run_command(pytester, "lf").stdout.splitlines()[-1] == (
            "2 failures in 2 files"
        )


class TestMerge:
    def test_newest_wins_and_keeps_its_age(
        self, pytester: pytest.Pytester, cli: Cli
    ) -> None:
        one, two = Cache(pytester.path / "one"), Cache(pytester.path / "two")
        one.set("app/v", "old")
        two.set("app/v", "new")
        age(one.cachedir / "v" / "app" / "v", 100)
        age(two.cachedir / "v" / "app" / "v", 50)
        assert cli("merge", "--into", "dest", "one", "two")[0] == 0
        dest = Cache(pytester.path / "dest")
        assert dest.get("app/v", None) == "new"
        # The copy keeps the age of the value it came from, for max_age.
        assert dest.get("app/v", None, max_age=40) is None
        assert dest.get("app/v", None, max_age=60) == "new"

    def test_dest_takes_part(self, pytester: pytest.Pytester, cli: Cli) -> None:
        dest, src = Cache(pytester.path / "dest"), Cache(pytester.path / "src")
        dest.set(LASTFAILED_KEY, {"t.py::a": True})
        dest.set("app/v", "dest is newer")
        src.set(LASTFAILED_KEY, {"t.py::b": True})
        src.set("app/v", "src is older")
        age(src.cachedir / "v" / "app" / "v", 100)
        assert cli("merge", "--into", "dest", "src")[0] == 0
        assert dest.get(LASTFAILED_KEY, None) == {"t.py::a": True, "t.py::b": True}
        assert dest.get("app/v", None) == "dest is newer"

    def test_damaged_records_are_left_out(
        self, pytester: pytest.Pytester, cli: Cli
    ) -> None:
        good, bad = Cache(pytester.path / "good"), Cache(pytester.path / "bad")
        good.set(LASTFAILED_KEY, {"t.py::a": True})
        bad.set(LASTFAILED_KEY, ["not", "a", "mapping"])
        bad.set(NODEIDS_KEY, "nope")
        status, out, err = cli("merge", "--into", "dest", "good", "bad")
        assert status == 0
        assert "warning: left out damaged" in err
        assert "1 known failures" in out
        dest = Cache(pytester.path / "dest")
        assert dest.get(LASTFAILED_KEY, None) == {"t.py::a": True}
        assert dest.get(NODEIDS_KEY, None) == []

    def test_missing_source(self, pytester: pytest.Pytester, cli: Cli) -> None:
        status, _, err = cli("merge", "--into", "dest", "nowhere")
        assert status == 2
        assert "'nowhere' is not a directory" in err
        assert not (pytester.path / "dest").exists()
