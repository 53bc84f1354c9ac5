"""Pure parts of the Redis backend: URLs and redaction, key matching, three-way merges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_crosscache.backends._redis_journal import merge3
from pytest_crosscache.backends._redis_url import RedisURL
from pytest_crosscache.backends._redis_url import redact
from pytest_crosscache.backends.directory import DirectoryBackend
from pytest_crosscache.backends.redis_hooks import default_namespace
from pytest_crosscache.fs.paths import rglob_match


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@host:1/2", "redis://:***@host:1/2"),
        ("rediss://me:hunter2@host", "rediss://me:***@host"),
        ("redis://hunter2@host", "redis://***@host"),
        ("redis://host/0?password=hunter2&db=1", "redis://host/0?password=***&db=1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("ftp://me:hunter2@host", "ftp://me:***@host"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_url_parts_and_repr_hide_the_password() -> None:
    url = RedisURL("rediss://:p%40ss@example.org:6380/3")
    assert (url.scheme, url.address, url.db) == ("rediss", "example.org:6380", 3)
    for text in (repr(url), str(url), url.redacted):
        assert "p%40ss" not in text
        assert "p@ss" not in text
    assert url.password == "p@ss"
    assert url.connection_options()["password"] == "p@ss"


@pytest.mark.parametrize(
    "value",
    [
        "memcached://:hunter2@host",
        "http://:hunter2@host",
        "hunter2",
        "redis://:hunter2@host/notadb",
        "redis://:hunter2@host:99999",
    ],
)
def test_bad_urls_are_named_without_password(value: str) -> None:
    with pytest.raises(ValueError, match="URL") as info:
        RedisURL(value)
    assert "hunter2" not in str(info.value) or value == "hunter2"


def test_default_namespace_is_the_rootdir_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TOX_ENV_NAME", raising=False)
    # Two checkouts of one project on different machines agree.
    assert default_namespace(tmp_path / "a" / "myproject") == "myproject"
    assert default_namespace(Path("/builds/x/myproject")) == "myproject"
    monkeypatch.setenv("TOX_ENV_NAME", "py312")
    assert default_namespace(Path("/src/myproject")) == "myproject/py312"


KEYS = [
    "cache/lastfailed",
    "cache/nodeids",
    "cache/stepwise",
    "myplugin/a/b",
    "myplugin/a-b",
    "top",
    ".hidden/x",
]


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "cache/*",
        "lastfailed",
        "last*",
        "a/*",
        "**/b",
        "myplugin/**/b",
        "c?che/n*",
        "*/*",
        "[ct]*",
        "nothing",
    ],
)
def test_rglob_match_agrees_with_the_directory_backend(
    tmp_path: Path, pattern: str
) -> None:
    directory = DirectoryBackend(tmp_path)
    for key in KEYS:
        directory.write(key, b"1")
    expected = sorted(directory.keys(pattern))
    assert sorted(key for key in KEYS if rglob_match(key, pattern)) == expected


def enc(value: object) -> bytes | None:
    return None if value is None else json.dumps(value).encode()


@pytest.mark.parametrize(
    ("base", "ours", "theirs", "merged"),
    [
        # lastfailed-like mappings: our additions and removals on top of theirs.
        (
            {"a": True},
            {"a": True, "b": True},
            {"a": True, "c": True},
            {"a": True, "b": True, "c": True},
        ),
        (
            {"a": True, "b": True},
            {"b": True},
            {"a": True, "b": True, "c": True},
            {"b": True, "c": True},
        ),
        (None, {"x": True}, {"y": True}, {"x": True, "y": True}),
        ({"a": True}, {"a": True}, {"a": True, "z": True}, {"a": True, "z": True}),
        # nodeids-like sorted lists of str.
        (["a", "b"], ["a", "b", "c"], ["a", "b", "d"], ["a", "b", "c", "d"]),
        (["a", "b"], ["b"], ["a", "b", "z"], ["b", "z"]),
        # Nothing changed on their side: ours, even a deletion.
        ({"a": 1}, None, {"a": 1}, None),
        ("x", "y", "x", "y"),
        # Their side only changed: theirs.
        ("x", "x", "z", "z"),
    ],
)
def test_merge3(base, ours, theirs, merged) -> None:
    assert merge3(enc(base), enc(ours), enc(theirs)) == merged


def test_merge3_newest_wins_for_other_values() -> None:
    old = {"last_failed": "t1", "last_test_count": 3, "last_cache_date_str": "x"}
    ours = dict(old, last_failed="t2")
    theirs = dict(old, last_failed="t3")
    # Mappings still merge field by field ...
    assert merge3(enc(old), enc(ours), enc(theirs))["last_failed"] == "t2"
    # ... scalars and mixed types go to the newer side.
    assert merge3(enc(1), enc(2), enc(3), ours_newer=True) == 2
    assert merge3(enc(1), enc(2), enc(3), ours_newer=False) == 3
    assert merge3(enc([1]), enc([1, 2]), enc({"a": 1}), ours_newer=False) == {"a": 1}


@given(
    base=st.sets(st.text(max_size=3), max_size=6),
    added=st.sets(st.text(max_size=3), max_size=4),
    removed=st.sets(st.text(max_size=3), max_size=4),
    theirs=st.sets(st.text(max_size=3), max_size=6),
)
def test_merge3_lists_apply_our_delta(base, added, removed, theirs) -> None:
    ours = (base - removed) | added
    result = merge3(enc(sorted(base)), enc(sorted(ours)), enc(sorted(theirs)))
    if sorted(ours) == sorted(theirs):
        assert result == sorted(theirs)
    elif sorted(theirs) == sorted(base):
        assert result == sorted(ours)
    else:
        expected = (theirs - (base - ours)) | (ours - base)
        assert result == sorted(expected)
