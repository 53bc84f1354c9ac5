"""Damaged records and odd ids never crash a session or the command.

A ``cache/stepwise`` date with a time zone (or at the ends of the
calendar), node ids that cannot name a file, and entries of the Redis
outage journal that can never be replayed: the session runs, its outcome
and exit code are those of its tests, and a warning names what was
ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_crosscache import Cache
from pytest_crosscache._keys import LASTFAILED_KEY
from pytest_crosscache._keys import STEPWISE_KEY
from pytest_crosscache.backends._redis_journal import JOURNAL_DIR
from pytest_crosscache.backends.redis import RedisBackend
from pytest_crosscache.cli import main

STEPWISE_PROJECT = """
    def test_a(): pass
    def test_b(): assert 0
    def test_c(): pass
"""


@pytest.mark.parametrize(
    ("date", "resumes"),
    [
        ("2024-01-01T00:00:00+00:00", True),
        ("2024-06-30T23:59:59.999999+14:00", True),
        ("2024-01-01T00:00:00-12:00", True),
        ("9999-12-30T00:00:00-12:00", True),  # in the future: age 0
        ("2999-01-01T00:00:00", True),
        ("0001-01-01T00:00:00+14:00", False),  # before year 1 in UTC
        ("9999-12-31T23:59:59-14:00", False),  # after year 9999 in UTC
    ],
)
def test_stepwise_dates_with_a_zone(
    pytester: pytest.Pytester, date: str, resumes: bool
) -> None:
    pytester.makepyfile(STEPWISE_PROJECT)
    first = pytester.runpytest("--sw")
    first.assert_outcomes(passed=1, failed=1)
    path = pytester.path / ".pytest_cache" / "v" / "cache" / "stepwise"
    state = json.loads(path.read_text())
    state["last_cache_date_str"] = date
    path.write_text(json.dumps(state))
    result = pytester.runpytest_subprocess("--sw", "-v")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    # The exit status of a stepwise stop, whichever it is in this pytest.
    assert result.ret == first.ret
    if resumes:
        result.stdout.fnmatch_lines(
            ["stepwise: skipping 1 already passed items (cache from *:*:* ago*"]
        )
        assert "-1 day" not in result.stdout.str()
        result.assert_outcomes(failed=1, deselected=1)
    else:
        result.stdout.fnmatch_lines(["stepwise: error reading cache, discarding*"])
        assert "ignoring 'cache/stepwise'" in result.stdout.str() + result.stderr.str()
        result.assert_outcomes(passed=1, failed=1)
    # The session wrote a fresh, readable state.
    stored = Cache(pytester.path / ".pytest_cache").get(STEPWISE_KEY, None)
    assert stored["last_failed"] == "test_stepwise_dates_with_a_zone.py::test_b"


ODD_IDS = {
    "x" * 5000 + ".py::test_long": True,
    "/".join(["d" * 255] * 20) + ".py::t": True,
    "lone \udcff surrogate.py::t": True,
    "bidi \u202e.py::t": True,
    "": True,
}


def write_lastfailed(pytester: pytest.Pytester, record: dict[str, bool]) -> None:
    # As JSON escapes: a lone surrogate has no UTF-8 form, JSON text has one.
    Cache(pytester.path / ".pytest_cache").set("app/init", 0)
    path = pytester.path / ".pytest_cache" / "v" / "cache" / "lastfailed"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("option", ["--lf", "--ff", "--lf --lfnf=none", "--nf"])
def test_odd_ids_in_lastfailed_sessions(pytester: pytest.Pytester, option: str) -> None:
    pytester.makepyfile(test_x="def test_ok(): pass")
    write_lastfailed(pytester, ODD_IDS)
    result = pytester.runpytest_subprocess(*option.split())
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert result.ret == 0
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "args", [["lf"], ["lf", "--json"], ["show"], ["show", "--json"]]
)
def test_odd_ids_in_the_command(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    write_lastfailed(pytester, ODD_IDS)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "cache/lastfailed" in out or "surrogate" in out
    if args == ["lf"]:
        # Printed, with what no terminal can show escaped.
        assert "lone \\udcff surrogate.py::t" in out


# --- the Redis outage journal ------------------------------------------------


def poisoned_journal(server, tmp_path: Path, namespace: str) -> Path:
    """A cache whose outage journal holds entries that can never be replayed.

    Made the real way (a session that loses Redis and writes on), then
    made worse: a key that is no key, a value too deep to merge, and a
    key whose Redis value someone replaced by a hash.
    """
    cachedir = tmp_path / "project" / ".pytest_cache"
    backend = RedisBackend.from_url(server.url, namespace=namespace, cachedir=cachedir)
    cache = Cache(cachedir, backend)
    cache.set("app/x", {"before": 1})
    cache.set("app/deep", [1])
    server.kill()
    outages: list[str] = []
    backend.on_outage = outages.append
    cache.set("app/x", {"during": 2})
    cache.set("app/deep", [2])
    assert len(outages) == 1
    server.start()
    (journal,) = (cachedir / JOURNAL_DIR).glob("journal-*.json")
    entries = json.loads(journal.read_text())
    assert set(entries) == {"app/x", "app/deep"}
    entries["../../escape"] = {"base": None, "time": 1.0}
    entries["/etc/passwd"] = {"base": "1", "time": 1.0}
    entries["odd"] = "not an entry"
    entries["app/deep"]["base"] = "[" * 100_000 + "]" * 100_000
    # Ours differs from the base: the merge has to parse both, and cannot.
    (cachedir / "v" / "app" / "deep").write_text("[" * 100_000 + "]" * 99_999 + ", 1]")
    journal.write_text(json.dumps(entries))
    client = server.client()
    prefix = f"crosscache:{{{namespace}}}:"
    client.delete(prefix + "v:app/x")
    client.hset(prefix + "v:app/x", "field", "a hash now")
    client.close()
    return cachedir


def test_unreplayable_journal_entries_leave_the_session_alone(
    own_redis_server, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    server = own_redis_server
    cachedir = poisoned_journal(server, tmp_path, "journal-test")
    escape = tmp_path / "escape"
    pytester.makepyfile(
        """
        def test_ok(): pass
        def test_fails(): assert 0
        """
    )
    result = pytester.runpytest_subprocess(
        "-o",
        f"cache_dir={cachedir}",
        "-o",
        "cache_namespace=journal-test",
        f"--cache-backend={server.url}",
        "-W",
        "error",
    )
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(
        passed=1, failed=1, warnings=result.parseoutcomes().get("warnings", 0)
    )
    for key in ("../../escape", "/etc/passwd", "app/x", "app/deep"):
        assert f"dropped the Redis outage journal's entry for {key!r}" in output, key
    assert "'odd'" in output
    assert not escape.exists()
    # The journal is done with; the session's own record reached Redis.
    assert not list((cachedir / JOURNAL_DIR).glob("journal-*.json"))
    backend = RedisBackend.from_url(
        server.url, namespace="journal-test", cachedir=tmp_path / "elsewhere"
    )
    lastfailed = json.loads(backend.read(LASTFAILED_KEY) or b"{}")
    assert list(lastfailed) == [
        "test_unreplayable_journal_entries_leave_the_session_alone.py::test_fails"
    ]
    # What this machine wrote during the outage is still there, locally.
    assert json.loads((cachedir / "v" / "app" / "x").read_text()) == {"during": 2}


@pytest.mark.parametrize("kind", ["fifo", "garbage", "link", "directory"])
def test_unreadable_journal_is_reported_not_fatal(
    own_redis_server, tmp_path: Path, kind: str
) -> None:
    server = own_redis_server
    cachedir = tmp_path / ".pytest_cache"
    backend = RedisBackend.from_url(server.url, namespace="ns", cachedir=cachedir)
    journal = backend._outage_journal.path
    journal.parent.mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text(json.dumps({"app/x": {"base": None}}))
    if kind == "fifo":
        os.mkfifo(journal)
    elif kind == "garbage":
        journal.write_bytes(b"\xff{not json")
    elif kind == "link":
        journal.symlink_to(secret)
    else:
        journal.mkdir()
    messages: list[str] = []
    backend.on_outage = messages.append
    Cache(cachedir, backend).set("app/y", 1)  # connects, replays, writes
    assert backend.read("app/y") == b"1"
    assert any(str(journal) in message for message in messages), messages
    assert secret.read_text() == json.dumps({"app/x": {"base": None}})
