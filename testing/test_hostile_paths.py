"""Names from data never become paths outside the cache.

Attacks with what others can write: names in a shared Redis namespace's
index (written straight into the meta hash with redis-py), symbolic links
planted in a cache directory (as a downloaded artifact can hold), globs
typed on the command line, node ids in ``cache/lastfailed``.  Each attack
puts "victim" files outside the cache where the hostile name points, runs
the real command or pytest session, and checks that every victim is intact
and every skipped name is named in a warning.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from conftest import Cli
from pytest_crosscache import Cache
from pytest_crosscache import DirectoryBackend
from pytest_crosscache.fs.paths import UnsafePathError
from pytest_crosscache.fs.paths import check_glob
from pytest_crosscache.fs.paths import confined
from pytest_crosscache.fs.paths import relative_parts

#: Names a writer of a shared namespace can put in its index.
HOSTILE_NAMES = [
    "../../../victim",
    "../../victim",
    "a/../../../../victim",
    "/etc/crosscache-victim",
    "./cache/lastfailed",
    "cache//lastfailed",
    "nul\0byte",
    "x" * 300,
    "a/" + "y" * 256,
    "half.crosscache-tmp",
    "",
]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


def plant_victims(base: Path) -> dict[Path, str]:
    """Files outside the cache where hostile names lead; returns path -> content."""
    victims = {}
    for path in (base / "victim", base.parent / "victim", base / "outside" / "keep"):
        path.parent.mkdir(parents=True, exist_ok=True)
        content = f"victim {uuid.uuid4().hex}"
        path.write_text(content)
        victims[path] = content
    return victims


def assert_intact(victims: dict[Path, str]) -> None:
    for path, content in victims.items():
        assert path.read_text() == content, path


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text
        assert "INTERNALERROR" not in text


# --- the one check ---------------------------------------------------------


class TestTheCheck:
    @pytest.mark.parametrize(
        "name",
        [
            name
            for name in HOSTILE_NAMES
            # A reserved suffix is a key rule; a segment too long for a
            # file name is the file system's to refuse, as with pytest.
            if not name.endswith(".crosscache-tmp") and len(name) < 256
        ],
    )
    def test_hostile_names_refused_lexically(self, name: str) -> None:
        with pytest.raises(UnsafePathError):
            relative_parts(name)

    @pytest.mark.parametrize(
        "name", ["a", "a/b", ".hidden/x", "a..b", "x" * 255, "y" * 300]
    )
    def test_plain_names_pass(self, name: str, tmp_path: Path) -> None:
        assert relative_parts(name) == name.split("/")
        assert confined(tmp_path, name, under="v") == tmp_path / "v" / name

    def test_link_out_refused_link_inside_allowed(self, tmp_path: Path) -> None:
        root = tmp_path / "cache"
        (root / "v" / "real").mkdir(parents=True)
        (tmp_path / "elsewhere").mkdir()
        (root / "v" / "out").symlink_to(tmp_path / "elsewhere")
        (root / "v" / "in").symlink_to(root / "v" / "real")
        (root / "v" / "file-out").symlink_to(tmp_path / "elsewhere" / "f")
        assert confined(root, "in/x", under="v") == root / "v" / "in" / "x"
        with pytest.raises(UnsafePathError, match=r"out/x.*symbolic link"):
            confined(root, "out/x", under="v")
        # The entry itself may be acted on (unlinked), not followed.
        assert confined(root, "file-out", under="v", follow=False)
        with pytest.raises(UnsafePathError):
            confined(root, "file-out", under="v")

    def test_under_itself_a_link(self, tmp_path: Path) -> None:
        root = tmp_path / "cache"
        root.mkdir()
        (root / "v").symlink_to(tmp_path)
        with pytest.raises(UnsafePathError, match="leads outside"):
            confined(root, "x", under="v", follow=False)

    @pytest.mark.parametrize("glob", ["", "/etc/*", "/", "a\0b"])
    def test_globs_refused(self, glob: str) -> None:
        with pytest.raises(UnsafePathError):
            check_glob(glob)


# --- Redis: names in the namespace's index ---------------------------------


def meta_key(namespace: str) -> str:
    return f"crosscache:{{{quote(namespace, safe='')}}}:meta"


@pytest.fixture
def redis_project(pytester: pytest.Pytester, redis_server, redis_namespace: str):
    """A project whose cache lives in Redis, with hostile names in its index.

    Yields (pytester, client, name of the meta hash).
    """
    pytester.makeini(
        f"""
        [pytest]
        cache_backend = {redis_server.url}
        cache_namespace = {redis_namespace}
        """
    )
    client = redis_server.client()
    meta = meta_key(redis_namespace)
    values = meta.removesuffix("meta") + "v:"
    old = repr(time.time() - 10 * 86400)
    # A real value next to the hostile names: it must stay usable.
    client.set(values + "app/good", b'"good"')
    client.hset(meta, "app/good", old)
    for name in HOSTILE_NAMES:
        client.hset(meta, name, old)
        client.set(values + name, b"1")
    client.hset(meta, b"bad-utf8-\xff\xfe", old)
    (pytester.path / ".pytest_cache" / "v").mkdir(parents=True)
    yield pytester, client, meta
    client.delete(meta)
    client.close()


class TestRedisIndex:
    @pytest.mark.parametrize(
        "command",
        [
            ["clear", "*"],
            ["prune", "--older-than", "1d"],
            ["prune", "--older-than", "1s", "-n"],
        ],
    )
    def test_clear_and_prune_touch_nothing_outside(
        self, redis_project, cli: Cli, command: list[str]
    ) -> None:
        pytester, client, meta = redis_project
        victims = plant_victims(pytester.path)
        status, out, err = cli(*command)
        no_traceback(out, err)
        assert status == 0, err
        assert_intact(victims)
        for name in (
            "../../../victim",
            "/etc/crosscache-victim",
            "a/../../../../victim",
        ):
            assert (
                f"skipping a name in the Redis namespace's index: stored key {name!r}"
                in err
            )
        assert "b'bad-utf8-\\xff\\xfe' is not UTF-8 text" in err
        # The one good key was handled like any key; the bad ones stay.
        removed = "-n" not in command
        assert client.hexists(meta, "app/good") != removed
        assert client.hexists(meta, "../../../victim")

    def test_show_lists_the_good_and_names_the_bad(
        self, redis_project, cli: Cli
    ) -> None:
        status, out, err = cli("show")
        no_traceback(out, err)
        assert status == 0
        assert "app/good" in out
        assert "victim" not in out
        for name in ("../../../victim", "/etc/crosscache-victim", "./cache/lastfailed"):
            assert repr(name) in err

    def test_cache_show_no_internal_error(self, redis_project) -> None:
        pytester, _, _ = redis_project
        victims = plant_victims(pytester.path)
        result = pytester.runpytest_subprocess("--cache-show")
        no_traceback(result.stdout.str(), result.stderr.str())
        assert result.ret == 0
        result.stdout.fnmatch_lines(["app/good contains:", "  'good'"])
        assert "PytestCacheWarning" in result.stderr.str()
        assert "'../../../victim'" in result.stderr.str()
        assert_intact(victims)

    def test_cache_show_under_warnings_as_errors(self, redis_project) -> None:
        pytester, _, _ = redis_project
        result = pytester.runpytest_subprocess("--cache-show", "-W", "error")
        no_traceback(result.stdout.str(), result.stderr.str())
        assert result.ret == 0
        result.stdout.fnmatch_lines(["app/good contains:"])

    def test_session_and_cache_clear(self, redis_project) -> None:
        pytester, client, meta = redis_project
        victims = plant_victims(pytester.path)
        pytester.makepyfile(
            "def test_ok(cache): assert cache.get('app/good', 0) == 'good'"
        )
        pytester.runpytest_subprocess().assert_outcomes(passed=1)
        result = pytester.runpytest_subprocess("--cache-clear")
        no_traceback(result.stdout.str(), result.stderr.str())
        result.assert_outcomes(failed=1)  # app/good went with the clear
        assert_intact(victims)
        # A clear empties the whole namespace, hostile names included; what
        # is there now was written by the session after it.
        names = {name.decode("utf-8", "replace") for name in client.hkeys(meta)}
        assert b"cache/lastfailed" in client.hkeys(meta)
        assert not names & {name for name in HOSTILE_NAMES if name}


# --- symbolic links planted in the cache directory -------------------------


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, dict[Path, str]]:
    """A cache whose v/ holds links out of it: to a directory and to a file."""
    victims = plant_victims(tmp_path)
    cachedir = tmp_path / "proj" / ".pytest_cache"
    cache = Cache(cachedir)
    cache.set("app/good", 1)
    values = cachedir / "v"
    (values / "linkdir").symlink_to(tmp_path / "outside")
    (values / "app" / "linkfile").symlink_to(tmp_path / "victim")
    (values / "app" / "inside").symlink_to(values / "app" / "good")
    return cachedir, victims


class TestPlantedLinks:
    @pytest.mark.parametrize(
        "command",
        [
            ["clear", "*"],
            ["clear", "keep"],
            ["clear", "linkdir/*"],
            ["prune", "--older-than", "0s"],
            ["show"],
            ["show", "--json"],
            ["get", "linkdir/keep"],
            ["get", "app/linkfile"],
        ],
    )
    def test_commands(self, planted, cli: Cli, command: list[str]) -> None:
        cachedir, victims = planted
        status, out, err = cli("--cache-dir", str(cachedir), *command)
        no_traceback(out, err)
        assert status in (0, 1), err
        assert_intact(victims)
        assert "victim " not in out  # no victim's content shown
        if command[0] in ("show", "prune") or command == ["clear", "*"]:
            assert "app/linkfile" in err  # skipped, with a warning naming it
            assert "symbolic link" in err

    def test_api_refuses_writes_through_links(self, planted) -> None:
        cachedir, victims = planted
        cache = Cache(cachedir)
        with pytest.warns(pytest.PytestCacheWarning, match="linkdir/new"):
            cache.set("linkdir/new", 1)
        with pytest.warns(pytest.PytestCacheWarning, match="linkdir/keep"):
            assert cache.get("linkdir/keep", "default") == "default"
        with pytest.warns(pytest.PytestCacheWarning, match="app/linkfile"):
            assert cache.get("app/linkfile", "default") == "default"
        assert not (cachedir.parent.parent / "outside" / "new").exists()
        assert cache.get("app/inside", None) == 1  # a link inside is a value
        assert_intact(victims)

    def test_values_dir_itself_a_link(self, tmp_path: Path, cli: Cli) -> None:
        victims = plant_victims(tmp_path)
        cachedir = tmp_path / "proj" / ".pytest_cache"
        cachedir.mkdir(parents=True)
        (cachedir / "v").symlink_to(tmp_path / "outside")
        status, out, err = cli("--cache-dir", str(cachedir), "clear", "*")
        assert (status, out) == (0, "removed 0 values\n")
        assert "skipping v/" in err
        assert_intact(victims)
        status, out, err = cli("--cache-dir", str(cachedir), "clear")
        assert status == 0
        assert_intact(victims)
        assert not (cachedir / "v").exists()

    def test_dirs_dir_a_link(self, tmp_path: Path, cli: Cli) -> None:
        victims = plant_victims(tmp_path)
        cachedir = tmp_path / "proj" / ".pytest_cache"
        Cache(cachedir).set("app/x", 1)
        (cachedir / "d").symlink_to(tmp_path / "outside")
        status, out, _err = cli("--cache-dir", str(cachedir), "show")
        assert status == 0
        assert "d/keep" not in out
        with pytest.raises(ValueError, match="symbolic link"):
            Cache(cachedir).mkdir("sub")
        assert cli("--cache-dir", str(cachedir), "clear")[0] == 0
        assert not os.path.lexists(cachedir / "d")
        assert_intact(victims)

    def test_pytest_session_with_links(
        self, planted, pytester: pytest.Pytester
    ) -> None:
        cachedir, victims = planted
        pytester.makepyfile(
            """
            def test_uses(cache):
                assert cache.get("app/good", None) == 1
                cache.set("app/written", 2)
            def test_fails():
                assert 0
            """
        )
        for args in ([], ["--lf"], ["--cache-show"], ["--cache-clear"]):
            result = pytester.runpytest_subprocess("-o", f"cache_dir={cachedir}", *args)
            no_traceback(result.stdout.str(), result.stderr.str())
            assert result.ret in (0, 1)
        assert_intact(victims)
        assert (cachedir.parent.parent / "outside").is_dir()


# --- globs on the command line --------------------------------------------


@pytest.mark.parametrize("glob", ["/etc/*", "/", "", "/tmp/**/*"])
@pytest.mark.parametrize(
    "command",
    [["show"], ["show", "--json"], ["clear"], ["prune", "--older-than", "0s"]],
)
def test_bad_globs_are_usage_errors(
    pytester: pytest.Pytester, cli: Cli, glob: str, command: list[str]
) -> None:
    Cache(pytester.path / ".pytest_cache").set("app/x", 1)
    status, out, err = cli(*command, glob)
    no_traceback(out, err)
    assert status == 2
    assert err.startswith("crosscache: error: glob ")
    assert repr(glob) in err
    assert Cache(pytester.path / ".pytest_cache").get("app/x", None) == 1


@pytest.mark.parametrize("glob", ["/etc/*", "/"])
def test_cache_show_bad_glob(pytester: pytest.Pytester, glob: str) -> None:
    Cache(pytester.path / ".pytest_cache").set("app/x", 1)
    result = pytester.runpytest_subprocess("--cache-show", glob)
    no_traceback(result.stdout.str(), result.stderr.str())
    assert result.ret == 0
    assert f"glob {glob!r} is absolute" in result.stderr.str()


def test_command_as_a_process_on_an_absolute_glob(pytester: pytest.Pytester) -> None:
    Cache(pytester.path / ".pytest_cache").set("app/x", 1)
    done = subprocess.run(
        [sys.executable, "-m", "pytest_crosscache", "show", "/etc/*"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "glob '/etc/*' is absolute" in done.stderr
    no_traceback(done.stdout, done.stderr)


# --- node ids in records ---------------------------------------------------


HOSTILE_NODEIDS = [
    "../../../etc/passwd::test_x",
    "/etc/passwd::test_y",
    "x" * 300 + ".py::test_long",
    "/".join(["d" * 200] * 30) + "/t.py::test_deep",
    "nul\0.py::t",
    "",
    "::weird",
]


@pytest.mark.parametrize("option", ["--lf", "--ff", "--nf"])
def test_hostile_node_ids_in_lastfailed(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile(
        test_real="""
        def test_fails(): assert 0
        def test_passes(): pass
        """
    )
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    record = json.loads(path.read_text())
    record.update(dict.fromkeys(HOSTILE_NODEIDS, True))
    path.write_text(json.dumps(record))
    result = pytester.runpytest_subprocess(option, "-W", "error")
    no_traceback(result.stdout.str(), result.stderr.str())
    assert result.ret == 1
    result.assert_outcomes(
        **({"failed": 1} if option == "--lf" else {"failed": 1, "passed": 1})
    )
    if option == "--lf":
        # One warning names the ids that select no file, and why.
        err = result.stderr.str()
        assert "PytestCacheWarning: --lf: ignoring node ids" in err
        assert "'/etc/passwd' is an absolute path" in err
        assert "'../../../etc/passwd' has a '..' segment" in err
        # Too long for a file name: simply no such file, no warning needed.
        assert "test_long" not in err


# --- a property test over hostile names and globs -------------------------

hostile_text = st.text(
    alphabet=st.sampled_from(["a", "b", ".", "/", "*", "?", "[", "]", "\0", "~", "é"]),
    max_size=12,
)
hostile_names = st.one_of(
    hostile_text,
    st.lists(
        st.sampled_from(["..", ".", "", "a", "b", "v", "d", "link", "x" * 260]),
        max_size=6,
    ).map("/".join),
    st.sampled_from(HOSTILE_NAMES),
)
hostile_globs = st.one_of(
    hostile_text,
    st.lists(st.sampled_from(["..", "*", "**", "link", "a", "", "/"]), max_size=5).map(
        "/".join
    ),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(names=st.lists(hostile_names, max_size=6), glob=hostile_globs)
def test_property_listing_and_deleting_stay_inside(
    tmp_path: Path, names: list[str], glob: str
) -> None:
    """Whatever names reach the backend and whatever glob is asked for, only
    files inside the cache are listed, read or deleted."""
    sandbox = tmp_path / uuid.uuid4().hex
    victims = plant_victims(sandbox / "proj")
    cachedir = sandbox / "proj" / "c"
    backend = DirectoryBackend(cachedir)
    backend.write("a/b", b"1")
    backend.write("link-target/x", b"2")
    (cachedir / "v" / "link").symlink_to(sandbox / "proj" / "outside")
    skipped: list[str] = []
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in names:
            with contextlib.suppress(IsADirectoryError, PermissionError, OSError):
                backend.delete(name)
        try:
            listed = list(backend.keys(glob))
        except UnsafePathError:
            listed = []
        for key in listed:
            path = backend.path(key)
            assert os.path.realpath(path).startswith(
                os.path.realpath(cachedir) + os.sep
            )
            backend.read(key)
            backend.delete(key)
    skipped = [str(w.message) for w in caught]
    assert all("skipping" in message for message in skipped), skipped
    assert_intact(victims)


# --- special files planted as values ---------------------------------------


@pytest.mark.parametrize("key", ["cache/lastfailed", "cache/nodeids", "app/fifo"])
def test_fifos_planted_as_values_never_block(
    pytester: pytest.Pytester, key: str
) -> None:
    """A restored cache can hold a FIFO where a value should be: nobody ever
    writes to it, so opening it to read would block forever."""
    pytester.makepyfile(
        """
        def test_reads(cache):
            assert cache.get("app/fifo", "default") == "default"
        def test_fails():
            assert 0
        """
    )
    values = pytester.path / ".pytest_cache" / "v"
    (values / key).parent.mkdir(parents=True)
    os.mkfifo(values / key)

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest_crosscache", *args],
            cwd=pytester.path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    got = command("get", key)
    assert got.returncode == 1
    assert f"skipping cache key {key!r}" in got.stderr
    shown = command("show")
    assert shown.returncode == 0
    assert f"skipping v/{key}: it is not a regular file" in shown.stderr
    result = pytester.runpytest_subprocess("--lf", "-p", "no:warnings", timeout=60)
    no_traceback(result.stdout.str(), result.stderr.str())
    result.assert_outcomes(passed=1, failed=1)
    # A record the session writes replaces the FIFO.
    if key.startswith("cache/"):
        assert (values / key).is_file()


# --- a property test over hostile names in a Redis index ------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(names=st.lists(hostile_names, min_size=1, max_size=5), glob=hostile_globs)
def test_property_redis_index_names_stay_inside(
    tmp_path: Path, redis_server, names: list[str], glob: str
) -> None:
    """Whatever names a writer of the namespace puts in its index, listing,
    reading and deleting them never touches a file outside the cache."""
    import warnings

    from pytest_crosscache.backends.redis import RedisBackend

    sandbox = tmp_path / uuid.uuid4().hex
    victims = plant_victims(sandbox / "proj")
    namespace = f"prop-{uuid.uuid4().hex}"
    cachedir = sandbox / "proj" / "c"
    backend = RedisBackend.from_url(
        redis_server.url, namespace=namespace, cachedir=cachedir
    )
    backend.write("a/b", b"1")
    client = redis_server.client()
    meta = meta_key(namespace)
    try:
        for name in names:
            client.hset(meta, name, "1.0")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                listed = list(backend.keys(glob))
            except UnsafePathError:
                listed = []
            for key in listed:
                relative_parts(key)  # only plain names come out
                backend.read(key)
                backend.modified(key)
                backend.delete(key)
        assert all("skipping" in str(w.message) for w in caught)
        assert_intact(victims)
    finally:
        client.delete(meta)
        client.close()
