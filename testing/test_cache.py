"""The Python API of :class:`pytest_crosscache.Cache`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pytest_crosscache import Cache
from pytest_crosscache import DirectoryBackend


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "c")


def value_file(cache: Cache, key: str) -> Path:
    return cache.cachedir / "v" / key


def pytest_format(value: object) -> bytes:
    """Exactly the bytes pytest's builtin ``Cache.set`` writes."""
    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")


def tree(top: Path) -> set[str]:
    return {p.relative_to(top).as_posix() for p in top.rglob("*")}


class TestGetSet:
    @pytest.mark.parametrize(
        "value",
        [
            None,
            True,
            False,
            0,
            -17,
            10**100,
            1.5,
            -0.0,
            "",
            "text",
            [],
            {},
            [1, "two", 3.0, None, [True]],
            {"nested": {"list": [1, {"x": None}]}, "": "empty key"},
        ],
        ids=repr,
    )
    def test_round_trip(self, cache: Cache, value: object) -> None:
        cache.set("plugin/key", value)
        assert cache.get("plugin/key", "default") == value
        # A fresh object reads what the first one stored.
        assert Cache(cache.cachedir).get("plugin/key", "default") == value

    def test_stored_at_v_key_in_pytest_format(self, cache: Cache) -> None:
        value = {
            "zeta": "Ünïcödé ✓ 日本",
            "alpha": [1, 2.5, None],
            "mid": {"b": 1, "a": 2},
        }
        cache.set("plugin/sub/key", value)
        path = value_file(cache, "plugin/sub/key")
        assert path.read_bytes() == pytest_format(value)
        # Not escaped to \uXXXX, and dict order kept as given.
        assert "Ünïcödé ✓ 日本" in path.read_text(encoding="utf-8")
        loaded = cache.get("plugin/sub/key", None)
        assert list(loaded) == ["zeta", "alpha", "mid"]
        assert list(loaded["mid"]) == ["b", "a"]

    def test_tuple_becomes_list(self, cache: Cache) -> None:
        cache.set("k", (1, 2))
        assert cache.get("k", None) == [1, 2]

    def test_overwrite(self, cache: Cache) -> None:
        cache.set("k", {"long": list(range(100))})
        cache.set("k", 1)
        assert cache.get("k", None) == 1
        assert value_file(cache, "k").read_bytes() == b"1"

    def test_missing_gives_default(self, cache: Cache) -> None:
        sentinel = object()
        assert cache.get("plugin/missing", sentinel) is sentinel
        cache.set("plugin/other", 1)
        assert cache.get("plugin/missing", sentinel) is sentinel

    def test_readable_by_builtin_provider(self, pytester: pytest.Pytester) -> None:
        """Values we store are what pytest's own ``Cache.get`` reads, and back."""
        pytester.makepyfile(
            """
            import json, sys
            VALUE = {"b": ["Ünïcödé", 1.5, None], "a": True}

            def test_write(pytestconfig):
                mine = type(pytestconfig.cache).__module__
                pytestconfig.cache.set("interop/" + mine, VALUE)

            def test_read_other(pytestconfig):
                mine = type(pytestconfig.cache).__module__
                builtin = "_pytest.cacheprovider"
                other = "pytest_crosscache.cache" if mine == builtin else builtin
                got = pytestconfig.cache.get("interop/" + other, None)
                assert got is None or (got == VALUE and list(got) == ["b", "a"])
            """
        )
        pytester.runpytest().assert_outcomes(passed=2)
        pytester.runpytest("-p", "no:crosscache").assert_outcomes(passed=2)
        pytester.runpytest().assert_outcomes(passed=2)
        values = pytester.path / ".pytest_cache" / "v" / "interop"
        ours = (values / "pytest_crosscache.cache").read_bytes()
        builtin = (values / "_pytest.cacheprovider").read_bytes()
        assert ours == builtin


class TestCorruptValues:
    @pytest.mark.parametrize(
        "content",
        [
            b"",
            b"{not json",
            b'{"a": 1',
            b"\xff\xfe\x00garbage",
            b'"\xc3\x28"',  # invalid UTF-8 inside a string
            b"[" * 100_000,  # deeper than the parser's recursion limit
        ],
        ids=["empty", "syntax", "truncated", "binary", "bad-utf8", "too-deep"],
    )
    def test_invalid_gives_default(self, cache: Cache, content: bytes) -> None:
        cache.set("plugin/key", "good")
        value_file(cache, "plugin/key").write_bytes(content)
        sentinel = object()
        assert cache.get("plugin/key", sentinel) is sentinel

    def test_directory_gives_default(self, cache: Cache) -> None:
        cache.set("plugin/key/inside", 1)
        assert value_file(cache, "plugin/key").is_dir()
        assert cache.get("plugin/key", "default") == "default"

    def test_unreadable_gives_default(self, cache: Cache) -> None:
        # A dangling symlink: opening it fails for root too.
        cache.set("plugin/other", 1)
        value_file(cache, "plugin/key").symlink_to(cache.cachedir / "nowhere")
        assert cache.get("plugin/key", "default") == "default"


class TestKeys:
    @pytest.mark.parametrize(
        "key",
        ["..", "../x", "a/../../x", "a/b/../../../x", "/etc/passwd", "/", "/a/\0"],
        ids=[
            "dotdot",
            "dotdot-x",
            "climb",
            "climb-deep",
            "absolute",
            "root",
            "abs-nul",
        ],
    )
    def test_escaping_key_refused(self, cache: Cache, key: str) -> None:
        """What pytest refuses (a key outside the cache) is refused, naming the key."""
        named = re.escape(repr(key))
        with pytest.raises(ValueError, match=named):
            cache.set(key, 1)
        with pytest.raises(ValueError, match=named):
            cache.get(key, None)
        with pytest.raises(ValueError, match=named):
            cache.update(key, lambda v: v, 0)
        with pytest.raises(ValueError, match=named), cache.lock(key):
            pass
        # Nothing at all was created, not even the cache directory.
        assert not cache.cachedir.exists()

    def test_nul_read_as_default_refused_for_writing(self, cache: Cache) -> None:
        # pytest's get() returns the default; its set() raises ValueError.
        assert cache.get("a\0b", "default") == "default"
        with pytest.raises(ValueError, match=re.escape(repr("a\0b"))):
            cache.set("a\0b", 1)
        with pytest.raises(ValueError, match=re.escape(repr("a\0b"))):
            cache.update("a\0b", lambda v: v, 0)
        assert not cache.cachedir.exists()

    @pytest.mark.parametrize(
        ("key", "stored_at"),
        [
            ("", ""),
            (".", ""),
            ("a/..", ""),
            ("./", ""),
            ("x" * 256, "x" * 256),
            ("plugin/" + "é" * 128, "plugin/" + "é" * 128),  # 256 bytes in UTF-8
            ("plugin/" + "x" * 256 + "/inner", "plugin/" + "x" * 256 + "/inner"),
            ("plugin/name.crosscache-tmp", "plugin/name.crosscache-tmp"),
        ],
        ids=[
            "empty",
            "dot",
            "cancels-out",
            "dot-slash",
            "long",
            "long-utf8",
            "long-inside",
            "reserved-suffix",
        ],
    )
    def test_unstorable_key_warns_and_reads_default(
        self, cache: Cache, key: str, stored_at: str
    ) -> None:
        """A key pytest accepts but no file can hold: a warning, never an error."""
        path = re.escape(str(cache.cachedir / "v" / stored_at).rstrip("/"))
        with pytest.warns(pytest.PytestCacheWarning, match=f"path {path}: ") as rec:
            cache.set(key, 1)
        # The warning points at this line, as pytest's own does.
        assert [w.filename for w in rec] == [__file__]
        assert cache.get(key, "default") == "default"
        with pytest.warns(pytest.PytestCacheWarning, match=f"path {path}: "):
            assert cache.update(key, lambda v: [v], 0) in (0, [0])
        with cache.lock(key):
            pass
        values = cache.cachedir / "v"
        assert not values.exists() or not [p for p in values.rglob("*") if p.is_file()]

    def test_long_name_message_is_pytests(self, cache: Cache) -> None:
        key = "plugin/" + "x" * 256
        path = cache.cachedir / "v" / key
        with pytest.warns(pytest.PytestCacheWarning) as rec:
            cache.set(key, 1)
        assert str(rec[0].message) == (
            f"cache could not write path {path}: [Errno 36] File name too long: "
            f"{str(path)!r}"
        )
        inner = cache.cachedir / "v" / key / "inner"
        with pytest.warns(pytest.PytestCacheWarning) as rec:
            cache.set(key + "/inner", 1)
        assert str(rec[0].message) == (
            f"could not create cache path {inner}: [Errno 36] File name too long: "
            f"{str(path)!r}"
        )

    @pytest.mark.parametrize("key", [1, None, b"bytes", ["a"]], ids=repr)
    def test_key_must_be_str(self, cache: Cache, key: Any) -> None:
        with pytest.raises(TypeError, match="str"):
            cache.set(key, 1)
        with pytest.raises(TypeError, match="str"):
            cache.get(key, None)

    def test_longest_component_allowed(self, cache: Cache) -> None:
        key = "plugin/" + "x" * 255
        cache.set(key, "v")
        assert cache.get(key, None) == "v"
        multibyte = "plugin/" + "é" * 127  # 254 bytes
        cache.set(multibyte, "w")
        assert cache.get(multibyte, None) == "w"

    def test_dotdot_inside_key(self, cache: Cache) -> None:
        cache.set("a/../b", 1)
        assert cache.get("b", None) == 1
        assert value_file(cache, "b").read_bytes() == b"1"
        assert not value_file(cache, "a").exists()
        cache.set("b", 2)
        assert cache.get("a/../b", None) == 2

    def test_equivalent_spellings(self, cache: Cache) -> None:
        cache.set("plugin//x/./y", "v")
        assert cache.get("plugin/x/y", None) == "v"
        assert cache.get("plugin/x/y/", None) == "v"
        assert value_file(cache, "plugin/x/y").is_file()

    def test_temp_suffix_allowed_inside(self, cache: Cache) -> None:
        cache.set("plugin/name.crosscache-tmp/inside", 1)
        assert cache.get("plugin/name.crosscache-tmp/inside", None) == 1


class Custom:
    pass


def circular() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


class TestBadValues:
    @pytest.mark.parametrize(
        ("value", "mentions"),
        [
            ({1, 2}, "set"),
            (Custom(), "Custom"),
            (object(), "object"),
            ({(1, 2): "v"}, "tuple"),
            ([1, {"deep": [b"bytes"]}], "bytes"),
            (circular(), "ircular"),
            ("lone \ud800 surrogate", "surrogate"),
            ({"k": "\udcff"}, "surrogate"),
        ],
        ids=[
            "set",
            "custom",
            "object",
            "tuple-key",
            "nested-bytes",
            "circular",
            "surrogate",
            "surrogate-in-dict",
        ],
    )
    def test_refused_and_nothing_written(
        self, cache: Cache, value: object, mentions: str
    ) -> None:
        cache.set("plugin/key", "previous")
        before = value_file(cache, "plugin/key").read_bytes()
        with pytest.raises((TypeError, ValueError)) as exc:
            cache.set("plugin/key", value)
        message = str(exc.value)
        assert "'plugin/key'" in message
        assert mentions in message
        assert value_file(cache, "plugin/key").read_bytes() == before
        assert cache.get("plugin/key", None) == "previous"
        # No temporary file is left behind either.
        assert tree(cache.cachedir / "v") == {"plugin", "plugin/key"}

    def test_refused_for_new_key_creates_nothing(self, cache: Cache) -> None:
        with pytest.raises(TypeError, match="set"):
            cache.set("plugin/new", {1})
        assert not value_file(cache, "plugin/new").exists()
        assert cache.get("plugin/new", "default") == "default"

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
    def test_non_finite_floats_like_pytest(self, cache: Cache, value: float) -> None:
        """pytest stores these as JSON extensions; so do we, byte for byte."""
        cache.set("k", value)
        assert value_file(cache, "k").read_bytes() == pytest_format(value)
        got = cache.get("k", None)
        assert got == value or (got != got and value != value)


class TestMkdir:
    def test_mkdir(self, cache: Cache) -> None:
        path = cache.mkdir("plugin")
        assert isinstance(path, Path)
        assert path == cache.cachedir / "d" / "plugin"
        assert path.is_dir()
        (path / "file").write_text("kept")
        assert cache.mkdir("plugin") == path
        assert (path / "file").read_text() == "kept"

    @pytest.mark.parametrize("name", ["a/b", "/abs", "..", "a\0b"])
    def test_bad_names(self, cache: Cache, name: str) -> None:
        with pytest.raises(ValueError, match=re.escape(repr(name))):
            cache.mkdir(name)
        assert not cache.cachedir.exists()

    @pytest.mark.parametrize("name", ["", "."])
    def test_empty_names_the_parent_as_in_pytest(self, cache: Cache, name: str) -> None:
        assert cache.mkdir(name) == cache.cachedir / "d"
        assert (cache.cachedir / "d").is_dir()

    def test_backslash_is_part_of_the_name(self, cache: Cache) -> None:
        assert cache.mkdir("a\\b") == cache.cachedir / "d" / "a\\b"

    def test_name_too_long_raises_oserror(self, cache: Cache) -> None:
        with pytest.raises(OSError, match="File name too long"):
            cache.mkdir("x" * 256)

    def test_makedir_legacy_path(self, cache: Cache) -> None:
        path = cache.makedir("legacy")
        assert type(path).__name__ == "LocalPath"
        assert path.check(dir=1)
        assert str(path) == str(cache.cachedir / "d" / "legacy")
        assert path.join("f").ensure().check(file=1)
        assert (cache.cachedir / "d" / "legacy" / "f").is_file()

    def test_cachedir_alias(self, cache: Cache, tmp_path: Path) -> None:
        assert cache._cachedir == cache.cachedir == tmp_path / "c"
        assert isinstance(cache._cachedir, Path)


class TestInSession:
    def test_config_cache_and_fixture(self, pytester: pytest.Pytester) -> None:
        pytester.makeconftest(
            """
            import pytest
            from pytest_crosscache import Cache

            def pytest_configure(config):
                assert isinstance(config.cache, Cache)
                runs = config.cache.get("conftest/runs", 0)
                config.cache.set("conftest/runs", runs + 1)
            """
        )
        pytester.makepyfile(
            """
            from pathlib import Path
            from pytest_crosscache import Cache

            def test_fixture(cache, pytestconfig):
                assert cache is pytestconfig.cache
                assert isinstance(cache, Cache)
                cache.set("plugin/seen", cache.get("plugin/seen", []) + ["x"])

            def test_paths(cache, pytestconfig):
                d = cache.mkdir("plugin")
                assert d == pytestconfig.rootpath / ".pytest_cache" / "d" / "plugin"
                assert cache._cachedir == pytestconfig.rootpath / ".pytest_cache"
                legacy = cache.makedir("legacy")
                assert legacy.check(dir=1)
            """
        )
        pytester.runpytest().assert_outcomes(passed=2)
        pytester.runpytest().assert_outcomes(passed=2)
        cache = Cache(pytester.path / ".pytest_cache")
        assert cache.get("conftest/runs", None) == 2
        assert cache.get("plugin/seen", None) == ["x", "x"]

    def test_bad_value_in_test_fails_only_that_test(
        self, pytester: pytest.Pytester
    ) -> None:
        pytester.makepyfile(
            """
            import pytest

            def test_bad(cache):
                cache.set("plugin/key", {1, 2})

            def test_error_message(cache):
                with pytest.raises(TypeError, match="plugin/key.*set"):
                    cache.set("plugin/key", {1, 2})
            """
        )
        result = pytester.runpytest()
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(["*TypeError*plugin/key*"])


class TestUpdate:
    def test_missing_key(self, cache: Cache) -> None:
        seen = []

        def bump(value: int) -> int:
            seen.append(value)
            return value + 1

        assert cache.update("counter", bump, 10) == 11
        assert seen == [10]
        assert cache.get("counter", None) == 11
        assert cache.update("counter", bump, 10) == 12
        assert seen == [10, 11]

    def test_returns_new_value(self, cache: Cache) -> None:
        cache.set("k", [1])
        assert cache.update("k", lambda v: [*v, 2], []) == [1, 2]
        assert cache.get("k", None) == [1, 2]

    def test_unchanged_value_not_written(self, cache: Cache) -> None:
        cache.set("k", {"a": [1, 2]})
        path = value_file(cache, "k")
        before = path.stat()
        assert cache.update("k", lambda v: v, {}) == {"a": [1, 2]}
        assert cache.update("k", lambda v: {"a": [1, 2]}, {}) == {"a": [1, 2]}
        after = path.stat()
        # Every write replaces the file, so the same inode means no write.
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    @pytest.mark.parametrize(
        ("stored", "new"),
        [(1, True), (0, False), (1, 1.0), ({"a": 1, "b": 2}, {"b": 2, "a": 1})],
        ids=["int-to-bool", "zero-to-false", "int-to-float", "key-order"],
    )
    def test_equal_but_different_value_is_stored(
        self, cache: Cache, stored: object, new: object
    ) -> None:
        """``1 == True`` in Python, not in JSON: store exactly what was returned."""
        cache.set("k", stored)
        assert cache.update("k", lambda v: new, None) == new
        assert value_file(cache, "k").read_bytes() == pytest_format(new)

    def test_corrupt_value_gives_default(self, cache: Cache) -> None:
        cache.set("k", 1)
        value_file(cache, "k").write_bytes(b"{broken")
        assert cache.update("k", lambda v: [*v, "fixed"], []) == ["fixed"]
        assert cache.get("k", None) == ["fixed"]

    def test_corrupt_value_repaired_even_if_default_returned(
        self, cache: Cache
    ) -> None:
        cache.set("k", 1)
        value_file(cache, "k").write_bytes(b"{broken")
        assert cache.update("k", lambda v: v, []) == []
        assert cache.get("k", None) == []

    def test_exception_propagates_nothing_written(self, cache: Cache) -> None:
        cache.set("k", "previous")

        def boom(value: object) -> object:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            cache.update("k", boom, None)
        assert cache.get("k", None) == "previous"
        # The lock was released: another update goes through at once.
        assert cache.update("k", lambda v: v + "!", None) == "previous!"

    def test_bad_result_propagates_nothing_written(self, cache: Cache) -> None:
        cache.set("k", "previous")
        with pytest.raises(TypeError, match=r"'k'.*set"):
            cache.update("k", lambda v: {1}, None)
        assert cache.get("k", None) == "previous"
        assert tree(cache.cachedir / "v") == {"k"}

    def test_threads(self, cache: Cache) -> None:
        n, m = 8, 25
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(m):
                    cache.update("counter", lambda v: v + 1, 0)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        assert cache.get("counter", None) == n * m

    def test_threads_with_own_cache_objects(self, tmp_path: Path) -> None:
        """Separate ``Cache`` objects on one directory, as plugins create them."""
        n, m = 6, 20
        cachedir = tmp_path / "c"

        def work() -> None:
            mine = Cache(cachedir)
            for _ in range(m):
                mine.update("list", lambda v: [*v, len(v)], [])

        threads = [threading.Thread(target=work) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert Cache(cachedir).get("list", None) == list(range(n * m))


INCREMENT = """
import sys, time
from pathlib import Path
from pytest_crosscache import Cache

cachedir, start, m = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
cache = Cache(cachedir)
while not start.exists():
    time.sleep(0.001)
for _ in range(m):
    cache.update("counter", lambda v: v + 1, 0)
"""

LOCKED_READ_MODIFY_WRITE = """
import sys, time
from pathlib import Path
from pytest_crosscache import Cache

cachedir, start, m = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
cache = Cache(cachedir)
while not start.exists():
    time.sleep(0.001)
for _ in range(m):
    with cache.lock("counter"):
        value = cache.get("counter", 0)
        time.sleep(0.0005)  # widen the window a missing lock would expose
        cache.set("counter", value + 1)
"""


def run_processes(tmp_path: Path, script: str, n: int, m: int) -> Path:
    cachedir = tmp_path / "c"
    start = tmp_path / "start"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(cachedir), str(start), str(m)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    start.touch()
    failures = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        if p.returncode:
            failures.append(err)
    assert failures == []
    return cachedir


@pytest.mark.parametrize(
    "script", [INCREMENT, LOCKED_READ_MODIFY_WRITE], ids=["update", "lock"]
)
def test_processes_compose(tmp_path: Path, script: str) -> None:
    n, m = 4, 25
    cachedir = run_processes(tmp_path, script, n, m)
    assert Cache(cachedir).get("counter", None) == n * m
    assert not [p for p in (cachedir / "v").rglob("*") if "crosscache" in p.name]


HOLD_LOCK = """
import sys, time
from pathlib import Path
from pytest_crosscache import Cache

cache = Cache(Path(sys.argv[1]))
with cache.lock(sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def lock_held_elsewhere(cachedir: Path, key: str) -> Iterator[None]:
    """Another process holds the lock of ``key`` for the ``with`` block."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(cachedir), key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        try:
            assert holder.stdout.readline() == "locked\n"
            yield
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    cachedir = tmp_path / "c"
    impatient = Cache(cachedir, DirectoryBackend(cachedir, lock_timeout=0.3))
    with lock_held_elsewhere(cachedir, "plugin/state"):
        start = time.monotonic()
        with (
            pytest.raises(TimeoutError, match="plugin/state"),
            impatient.lock("plugin/state"),
        ):
            pass  # pragma: no cover
        assert time.monotonic() - start >= 0.25
        # The same key spelt differently is the same lock.
        with pytest.raises(TimeoutError), impatient.lock("plugin/x/../state"):
            pass  # pragma: no cover
        # Other keys are independent.
        with impatient.lock("plugin/other"):
            pass
        assert impatient.update("plugin/other", lambda v: v + 1, 0) == 1
    with impatient.lock("plugin/state"):
        pass


def test_update_waits_for_lock_holder(tmp_path: Path) -> None:
    """An ``update`` issued while another process holds the lock runs after it."""
    cachedir = tmp_path / "c"
    Cache(cachedir).set("k", 0)
    done = threading.Event()
    result: list[int] = []

    def update() -> None:
        result.append(Cache(cachedir).update("k", lambda v: v + 1, 0))
        done.set()

    thread = threading.Thread(target=update)
    with lock_held_elsewhere(cachedir, "k"):
        thread.start()
        assert not done.wait(0.3)
        assert Cache(cachedir).get("k", None) == 0
    thread.join(timeout=30)
    assert result == [1]
    assert Cache(cachedir).get("k", None) == 1


# --- Property tests ---------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**1000), max_value=10**1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=40,
)


def deeply_nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=json_values)
def test_every_json_value_round_trips(tmp_path: Path, value: Any) -> None:
    cache = Cache(tmp_path / "c")
    cache.set("prop/value", value)
    got = cache.get("prop/value", object())
    assert got == value
    assert json.dumps(got, ensure_ascii=False) == json.dumps(value, ensure_ascii=False)
    assert value_file(cache, "prop/value").read_bytes() == pytest_format(value)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(depth=st.integers(min_value=1, max_value=400))
def test_deep_nesting_round_trips(tmp_path: Path, depth: int) -> None:
    cache = Cache(tmp_path / "c")
    value = deeply_nested(depth)
    cache.set("prop/deep", value)
    assert cache.get("prop/deep", None) == value


any_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()), max_size=80
)
key_like = st.lists(
    st.sampled_from(
        ["..", ".", "", "a", "b", "..a", "a..", "\\", "~", "$HOME", "v", "c"]
    )
    | any_text
    # Around the 255-byte limit of a file name.
    | st.integers(min_value=220, max_value=260).map(lambda n: "x" * n),
    max_size=6,
).map("/".join)
keys = st.one_of(any_text, key_like, key_like.map(lambda k: "/" + k))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=keys)
def test_arbitrary_keys_refused_or_round_trip(tmp_path: Path, key: str) -> None:
    """Every key is refused with an error, warned about, or stored inside the cache."""
    outer = tmp_path / uuid.uuid4().hex
    sandbox = outer / "sandbox"
    sandbox.mkdir(parents=True)
    cache = Cache(sandbox / "c")
    value = {"key": ascii(key)}
    refused = warned = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cache.set(key, value)
        except (ValueError, TypeError):
            refused = True
    warned = any(issubclass(w.category, pytest.PytestCacheWarning) for w in caught)
    if not refused and not warned:
        assert cache.get(key, None) == value
        assert cache.update(key, lambda v: [v], None) == [value]
        assert Cache(sandbox / "c").get(key, None) == [value]
    elif warned:
        # A key that cannot be stored reads as absent.
        assert cache.get(key, "absent") == "absent"
    # Nothing anywhere but inside the cache directory.
    created = {p for p in outer.rglob("*")}
    allowed_top = {sandbox, sandbox / "c"}
    stray = [
        p
        for p in created
        if p not in allowed_top and not p.is_relative_to(sandbox / "c")
    ]
    assert stray == []
    values = [p for p in (sandbox / "c" / "v").rglob("*") if p.is_file()]
    if refused:
        assert not (sandbox / "c").exists()
    else:
        assert len(values) == (0 if warned else 1)
