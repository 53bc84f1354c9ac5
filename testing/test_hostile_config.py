"""Mistaken and hostile configuration: passwords never shown, mistakes named, never a crash.

Every URL check goes through one parser (``backends/_redis_url.py``); these
tests attack it with hostile passwords and malformed URLs, through whole
pytest sessions and the ``crosscache`` command run as a subprocess, against
real ``redis-server`` processes that refuse, run out of memory, enforce
ACLs or are read-only replicas.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from pytest_crosscache.backends._redis_url import InvalidRedisURL
from pytest_crosscache.backends._redis_url import RedisURL
from pytest_crosscache.backends._redis_url import redact
from redis_server import PASSWORD
from redis_server import RedisServer
from redis_server import free_port

#: In every hostile password: a message showing any part of a password
#: that holds it would show this character (or its encoding).
MARK = "\u2603"
HOSTILE_PASSWORD = f"p@ss/w?rd#:x&y=z%41 {MARK}[1]"

FAILING = """
def test_ok():
    pass

def test_broken():
    assert 0
"""


def assert_hidden(text: str, password: str) -> None:
    """Neither the password, nor its encoding, nor the mark inside it, is in ``text``."""
    for form in {password, quote(password, safe=""), quote(password)}:
        if len(form) >= 4:
            assert form not in text, text
    assert MARK not in text, text
    assert quote(MARK).lower() not in text.lower(), text


def crosscache(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, as a CI job runs it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CACHE_BACKEND"}
    return subprocess.run(
        [sys.executable, "-m", "pytest_crosscache", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def local_record(root: Path, key: str = "cache/lastfailed") -> object:
    path = root / ".pytest_cache" / "v" / key
    return json.loads(path.read_text()) if path.exists() else None


# -- one parser, as redis-py's, that never shows a password ------------------

_PASSWORD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from("@/?#:%&=[]+ \t"),
    max_size=10,
)


@st.composite
def hostile_urls(draw: st.DrawFn) -> tuple[str, str, bool]:
    """(url, password, whether the password is percent-encoded in it)."""
    password = draw(_PASSWORD_TEXT) + MARK + draw(_PASSWORD_TEXT)
    encoded = draw(st.booleans())
    written = quote(password, safe="") if encoded else password
    user = draw(st.sampled_from(["", "me", "ci-bot"]))
    scheme = draw(st.sampled_from(["redis", "rediss", "unix"]))
    if scheme == "unix":
        rest = "/run/redis.sock" + draw(st.sampled_from(["", "?db=3"]))
    else:
        rest = (
            draw(st.sampled_from(["localhost", "127.0.0.1", "[::1]", "cache.example"]))
            + draw(st.sampled_from(["", ":6380", ":1"]))
            + draw(st.sampled_from(["", "/", "/0", "/15"]))
            + draw(
                st.sampled_from(["", "?socket_timeout=3", "?client_name=ci&protocol=3"])
            )
        )
    return f"{scheme}://{user}:{written}@{rest}", password, encoded


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_urls())
def test_password_never_shown_and_parse_agrees_with_redis_py(
    case: tuple[str, str, bool],
) -> None:
    from redis.connection import parse_url

    url, password, encoded = case
    try:
        parsed = RedisURL(url)
    except InvalidRedisURL as exc:
        # Only a password with a raw '/', '?', '#' or '[' is refused: with
        # those, redis-py would read part of it as the path or query.
        assert not encoded
        assert set(password) & set("/?#[]")
        assert_hidden(str(exc), password)
        assert_hidden(redact(url), password)
        return
    for text in (str(parsed), repr(parsed), redact(url)):
        assert_hidden(text, password)
    theirs = parse_url(url)
    assert parsed.password == theirs.get("password")
    assert parsed.username == theirs.get("username")
    assert parsed.db == theirs.get("db", 0)
    if parsed.scheme == "unix":
        assert parsed.path == theirs["path"]
    else:
        assert parsed.host == theirs.get("host", "localhost")
        assert parsed.port == theirs.get("port", 6379)
    for name, value in parsed.options.items():
        assert theirs[name] == value
    if encoded:
        assert parsed.password == password
    # What connects is what was checked.
    options = parsed.connection_options()
    assert options["password"] == parsed.password
    assert options["db"] == parsed.db


@given(st.text(max_size=30))
def test_redact_never_raises_and_masks_any_userinfo(text: str) -> None:
    shown = redact(f"redis://me:{MARK}{text}@host")
    assert MARK not in shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@host:1/2", "redis://:***@host:1/2"),
        ("redis://u:p@w@host:1/2", "redis://u:***@host:1/2"),
        ("redis://:p/ss@host", "redis://:***@host"),
        ("redis://:p?ss@host", "redis://:***@host"),
        ("redis://:hunter2", "redis://:***"),
        ("redis://host:hunter2/0?a=b", "redis://host:***"),
        ("redis://host/0#hunter2", "redis://host/0#***"),
        ("redis://host/0?hunter2", "redis://host/0?***"),
        ("unix:///s?password=hunter2&db=1", "unix:///s?password=***&db=1"),
        ("rediss://h/0?ssl_password=hunter2", "rediss://h/0?ssl_password=***"),
        # A field, not a search: a password equal to other text masks only itself.
        ("redis://:6379@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://:host@host/0", "redis://:***@host/0"),
    ],
)
def test_redact_masks_fields(url: str, shown: str) -> None:
    assert redact(url) == shown


# -- usage errors: a message naming the parameter, never a traceback --------

ENCODED = quote(HOSTILE_PASSWORD, safe="")

BAD_URLS = [
    (f"redis://:{ENCODED}@127.0.0.1:6379/0?foo=bar", "unknown query parameter 'foo'"),
    (
        f"redis://:{ENCODED}@127.0.0.1:6379/0?socket_timeout=abc",
        "invalid 'socket_timeout': it must be a number of seconds",
    ),
    (
        f"redis://:{ENCODED}@127.0.0.1/0?socket_connect_timeout=-1",
        "invalid 'socket_connect_timeout'",
    ),
    (
        f"redis://:{ENCODED}@127.0.0.1/0?ssl_cert_reqs=none",
        "TLS option 'ssl_cert_reqs' on a redis:// URL",
    ),
    ("unix:///tmp/x.sock?ssl_ca_certs=/etc/hosts", "TLS option 'ssl_ca_certs'"),
    (
        f"rediss://:{ENCODED}@127.0.0.1/0?ssl_ca_certs=/nonexistent/ca.pem",
        "invalid 'ssl_ca_certs': it must be an existing file",
    ),
    (f"redis://:{ENCODED}@127.0.0.1/0?socket_keepalive=maybe", "socket_keepalive"),
    (f"redis://:{ENCODED}@127.0.0.1/0?db=1&db=2", "'db' twice"),
    (f"redis://:{ENCODED}@127.0.0.1/0?db=1", "database 0 in its path and 1"),
    (f"redis://:{ENCODED}@127.0.0.1/zero", "not a database number"),
    (f"redis://:{HOSTILE_PASSWORD}@127.0.0.1:6379/0", "'@' after its host"),
    (f"redis://:{ENCODED}@127.0.0.1:{ENCODED}/0", "invalid port"),
    (f"redis://:{ENCODED}", "invalid port"),
    (f"redis://:{ENCODED}@127.0.0.1:0", "port 0"),
    (f"unix://{ENCODED}@host/tmp/sock", "names a host"),
    (f"memcached://:{ENCODED}@127.0.0.1", "unsupported cache backend URL"),
    (HOSTILE_PASSWORD, "no scheme://"),
]


@pytest.mark.parametrize(("url", "expected"), BAD_URLS)
def test_bad_url_is_a_usage_error_in_a_session(
    pytester: pytest.Pytester, url: str, expected: str
) -> None:
    pytester.makepyfile(test_a=FAILING)
    result = pytester.runpytest(f"--cache-backend={url}", "-v")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert err.startswith("ERROR: "), err
    assert expected in err
    output = result.stdout.str() + err
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    assert_hidden(output, HOSTILE_PASSWORD)


@pytest.mark.parametrize(("url", "expected"), BAD_URLS[::2])
def test_bad_url_is_exit_2_in_the_command(
    pytester: pytest.Pytester, url: str, expected: str
) -> None:
    pytester.makeini("[pytest]\n")
    for args in (("--backend", url, "show"), ("lf", "--backend", url)):
        result = crosscache(pytester.path, *args)
        assert result.returncode == 2, result
        assert result.stderr.startswith("crosscache: error: "), result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
        assert_hidden(result.stdout + result.stderr, HOSTILE_PASSWORD)


def test_bad_url_in_the_ini_file_is_named_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=FAILING)
    pytester.makeini(f"[pytest]\ncache_backend = redis://:{ENCODED}@h/0?retries=3\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *unknown query parameter 'retries'*"])
    assert_hidden(result.stdout.str() + result.stderr.str(), HOSTILE_PASSWORD)
    command = crosscache(pytester.path, "show")
    assert command.returncode == 2
    assert "unknown query parameter 'retries'" in command.stderr
    assert_hidden(command.stderr, HOSTILE_PASSWORD)


# -- ${VAR} without the variable: no backend, as for a fork's pull request --


@pytest.mark.parametrize(
    "setting",
    [
        "${CROSSCACHE_TEST_UNSET}",
        "$CROSSCACHE_TEST_UNSET",
        " ${CROSSCACHE_TEST_UNSET} ",
    ],
)
def test_unset_variable_means_the_local_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.delenv("CROSSCACHE_TEST_UNSET", raising=False)
    pytester.makepyfile(test_a=FAILING)
    pytester.makeini(f"[pytest]\ncache_backend = {setting}\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1, failed=1)
    assert "cache backend:" not in result.stdout.str()
    assert local_record(pytester.path) == {"test_a.py::test_broken": True}
    command = crosscache(pytester.path, "lf")
    assert command.returncode == 0, command.stderr
    assert "test_a.py::test_broken" in command.stdout


def test_set_variable_still_expands(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    redis_server: RedisServer,
    redis_namespace: str,
) -> None:
    monkeypatch.setenv("CROSSCACHE_TEST_URL", redis_server.url)
    monkeypatch.delenv("CROSSCACHE_TEST_UNSET", raising=False)
    pytester.makepyfile(test_a=FAILING)
    pytester.makeini(
        "[pytest]\ncache_backend = ${CROSSCACHE_TEST_URL}\n"
        f"cache_namespace = {redis_namespace}$CROSSCACHE_TEST_UNSET\n"
    )
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    assert redis_server.stored(redis_namespace, "cache/lastfailed") == {
        "test_a.py::test_broken": True
    }


# -- a hostile password that works, and is shown nowhere --------------------


def test_hostile_password_connects_and_is_never_shown(
    pytester: pytest.Pytester, tmp_path: Path, redis_namespace: str
) -> None:
    server = RedisServer(tmp_path / "server", password=HOSTILE_PASSWORD).start()
    try:
        pytester.makepyfile(test_a=FAILING)
        args = (
            f"--cache-backend={server.url}",
            "-o",
            f"cache_namespace={redis_namespace}",
        )
        first = pytester.runpytest(*args, "-v")
        first.assert_outcomes(passed=1, failed=1)
        first.stdout.fnmatch_lines(
            [f"cache backend: redis://:***@127.0.0.1:{server.port}/0 (namespace *"]
        )
        # It connected with the password: the record is on the server.
        assert server.stored(redis_namespace, "cache/lastfailed") == {
            "test_a.py::test_broken": True
        }
        show = pytester.runpytest(*args, "--cache-show")
        command = crosscache(pytester.path, "--backend", server.url, "show")
        assert command.returncode == 0, command.stderr
        assert f"values in: redis://:***@127.0.0.1:{server.port}/0" in command.stdout
        texts = [first.stdout.str(), show.stdout.str(), command.stdout, command.stderr]
        # An outage: the warning and the journal hold no password either.
        server.kill()
        pytester.makepyfile(test_b="def test_new():\n    assert 0\n")
        outage = pytester.runpytest(*args)
        outage.assert_outcomes(passed=1, failed=2, warnings=1)
        assert "is unreachable (connection refused" in outage.stdout.str()
        texts.append(outage.stdout.str())
        offline = crosscache(pytester.path, "--backend", server.url, "lf")
        texts += [offline.stdout, offline.stderr]
        for text in texts:
            assert_hidden(text, HOSTILE_PASSWORD)
        journals = list((pytester.path / ".pytest_cache").rglob("journal-*.json"))
        assert journals
        for path in (pytester.path / ".pytest_cache").rglob("*"):
            if path.is_file():
                assert_hidden(path.read_text(errors="replace"), HOSTILE_PASSWORD)
    finally:
        server.stop()


# -- what the server answers is named as what it is --------------------------


def session(
    pytester: pytest.Pytester, url: str, namespace: str, *args: str
) -> pytest.RunResult:
    return pytester.runpytest(
        f"--cache-backend={url}", "-o", f"cache_namespace={namespace}", *args
    )


def the_warning(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if "cache backend Redis at" in line]
    assert len(lines) == 1, result.outlines
    assert "unreachable" not in lines[0]
    return lines[0]


def test_wrong_password_is_named_and_the_session_goes_on(
    pytester: pytest.Pytester, redis_server: RedisServer, redis_namespace: str
) -> None:
    pytester.makepyfile(test_a=FAILING)
    wrong = f"wrong-{MARK}-password"
    url = f"redis://:{quote(wrong)}@{redis_server.address}/0"
    result = session(pytester, url, redis_namespace)
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    assert "refused the URL's user name or password" in the_warning(result)
    assert_hidden(result.stdout.str(), wrong)
    assert PASSWORD not in result.stdout.str()
    assert local_record(pytester.path) == {"test_a.py::test_broken": True}
    # A user name the server does not know is the same mistake.
    other = session(
        pytester,
        f"redis://nobody:{quote(wrong)}@{redis_server.address}/0",
        redis_namespace,
    )
    assert "refused the URL's user name or password" in the_warning(other)


def test_missing_password_is_named(
    pytester: pytest.Pytester, redis_server: RedisServer, redis_namespace: str
) -> None:
    pytester.makepyfile(test_a=FAILING)
    result = session(pytester, f"redis://{redis_server.address}/0", redis_namespace)
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    assert "requires a password and the URL gives none" in the_warning(result)


@pytest.mark.parametrize("db", ["/99", "?db=4000"])
def test_missing_database_is_named(
    pytester: pytest.Pytester, redis_server: RedisServer, redis_namespace: str, db: str
) -> None:
    pytester.makepyfile(test_a=FAILING)
    url = f"redis://:{PASSWORD}@{redis_server.address}{db}"
    result = session(pytester, url, redis_namespace)
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    number = db.strip("/?db=")
    assert f"has no database {number}" in the_warning(result)
    command = crosscache(pytester.path, "--backend", url, "show")
    assert command.returncode == 0
    assert f"has no database {number}" in command.stderr
    assert "Traceback" not in command.stderr


def test_out_of_memory_keeps_reads_and_sends_writes_later(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    own_redis_server: RedisServer,
    redis_namespace: str,
) -> None:
    server = own_redis_server
    pytester.makepyfile(test_a=FAILING)
    session(pytester, server.url, redis_namespace).assert_outcomes(passed=1, failed=1)
    # Another machine fixes the test while the server is full.
    other = pytester.mkdir("other")
    (other / "test_a.py").write_text(FAILING.replace("assert 0", "pass"))
    (other / "pytest.ini").write_text("[pytest]\n")
    client = server.client()
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        monkeypatch.chdir(other)
        result = session(pytester, server.url, redis_namespace, "--lf")
        # Reads still come from Redis: --lf knows the failure.
        result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure"])
        result.assert_outcomes(passed=1, warnings=1)
        assert "is out of memory and refuses writes (OOM" in the_warning(result)
        assert server.stored(redis_namespace, "cache/lastfailed") == {
            "test_a.py::test_broken": True
        }
    finally:
        client.config_set("maxmemory", "0")
        client.close()
    # Memory again: the next session from that machine sends its fix.
    again = session(pytester, server.url, redis_namespace, "--co")
    assert again.ret == pytest.ExitCode.OK
    assert "cache backend Redis at" not in again.stdout.str()
    assert server.stored(redis_namespace, "cache/lastfailed") == {}


def test_acl_read_only_user_reads_and_keeps_writes_local(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    own_redis_server: RedisServer,
    redis_namespace: str,
) -> None:
    server = own_redis_server
    client = server.client()
    reader_password = f"reader-{MARK}"
    client.execute_command(
        "ACL",
        "SETUSER",
        "reader",
        "on",
        f">{reader_password}",
        "~crosscache:*",
        "+@read",
        "+@connection",
        "-@write",
    )
    client.close()
    pytester.makepyfile(test_a=FAILING)
    session(pytester, server.url, redis_namespace).assert_outcomes(passed=1, failed=1)
    reader = f"redis://reader:{quote(reader_password)}@{server.address}/0"
    fork = pytester.mkdir("fork")
    (fork / "test_a.py").write_text(FAILING + "\ndef test_new():\n    assert 0\n")
    (fork / "pytest.ini").write_text("[pytest]\n")
    monkeypatch.chdir(fork)
    result = session(pytester, reader, redis_namespace, "--ff")
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure first"])
    result.assert_outcomes(passed=1, failed=2, warnings=1)
    warning = the_warning(result)
    assert "NOPERM" in warning
    assert "reads still come from Redis" in warning
    assert_hidden(result.stdout.str(), reader_password)
    # Nothing reached the server; the fork's cache has its own record.
    assert server.stored(redis_namespace, "cache/lastfailed") == {
        "test_a.py::test_broken": True
    }
    assert local_record(fork) == {
        "test_a.py::test_broken": True,
        "test_a.py::test_new": True,
    }


def test_read_only_replica_is_named(
    pytester: pytest.Pytester,
    own_redis_server: RedisServer,
    tmp_path: Path,
    redis_namespace: str,
) -> None:
    primary = own_redis_server
    pytester.makepyfile(test_a=FAILING)
    session(pytester, primary.url, redis_namespace).assert_outcomes(passed=1, failed=1)
    replica = RedisServer(tmp_path / "replica").start()
    try:
        client = replica.client()
        client.config_set("masterauth", PASSWORD)
        client.replicaof("127.0.0.1", primary.port)
        deadline = time.monotonic() + 30
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "replica did not sync"
            time.sleep(0.05)
        client.close()
        pytester.makepyfile(test_b="def test_new():\n    pass\n")
        result = session(pytester, replica.url, redis_namespace, "--ff")
        # Read from the replica; the new test's id cannot be written.
        result.stdout.fnmatch_lines(
            ["run-last-failure: rerun previous 1 failure first"]
        )
        result.assert_outcomes(passed=2, failed=1, warnings=1)
        assert "is a read-only replica and refuses writes" in the_warning(result)
    finally:
        replica.stop()


def test_unreachable_is_still_called_unreachable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=FAILING)
    url = f"redis://:{ENCODED}@127.0.0.1:{free_port()}/0"
    result = pytester.runpytest(f"--cache-backend={url}")
    result.assert_outcomes(passed=1, failed=1, warnings=1)
    result.stdout.fnmatch_lines(["*is unreachable (connection refused, ECONNREFUSED)*"])
    assert_hidden(result.stdout.str(), HOSTILE_PASSWORD)


# -- the lock-down the threat model recommends works as documented ----------

#: The commands doc/guarantees.rst lists for a project's CI user.
CI_COMMANDS = [
    "-@all",
    "+hello",
    "+auth",
    "+ping",
    "+select",
    "+get",
    "+mget",
    "+set",
    "+del",
    "+hget",
    "+hset",
    "+hdel",
    "+hkeys",
    "+watch",
    "+unwatch",
    "+multi",
    "+exec",
    "+discard",
    "+eval",
]
#: ... and for a read-only user (pull requests from forks).
READER_COMMANDS = [
    "-@all",
    "+hello",
    "+auth",
    "+ping",
    "+select",
    "+get",
    "+mget",
    "+hget",
    "+hkeys",
]


def test_documented_acl_users(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    own_redis_server: RedisServer,
) -> None:
    import uuid

    server = own_redis_server
    project = f"github.com/o/app-{uuid.uuid4().hex[:8]}"
    encoded = quote(project, safe="")
    pattern = f"~crosscache:{{{encoded}}}:*"
    client = server.client()
    client.execute_command(
        "ACL",
        "SETUSER",
        "app-ci",
        "on",
        ">ci-pass",
        "resetkeys",
        pattern,
        "resetchannels",
        *CI_COMMANDS,
    )
    client.execute_command(
        "ACL",
        "SETUSER",
        "app-fork",
        "on",
        ">fork-pass",
        "resetkeys",
        pattern,
        "resetchannels",
        *READER_COMMANDS,
    )
    # A neighbour's keys are out of reach for both.
    client.set("crosscache:{github.com%2Fo%2Fother}:v:cache/lastfailed", b"{}")
    client.close()
    pytester.makepyfile(test_a=FAILING)
    pytester.makeconftest(
        """
        def test_computed(cache):
            assert cache.get_or_set("computed/value", lambda: 7) == 7
        """
    )
    pytester.makepyfile(test_c="from conftest import test_computed")
    ci = f"redis://app-ci:ci-pass@{server.address}/0"
    args = ("-o", f"cache_namespace={project}")
    first = pytester.runpytest(f"--cache-backend={ci}", *args)
    first.assert_outcomes(passed=2, failed=1)
    assert "cache backend Redis at" not in first.stdout.str()
    assert server.stored(project, "computed/value") == 7
    # The fork's user reads the shared record and writes nothing.
    fork = f"redis://app-fork:fork-pass@{server.address}/0"
    monkeypatch.chdir(pytester.mkdir("fork"))
    for name in ("test_a.py", "test_c.py", "conftest.py"):
        (pytester.path / "fork" / name).write_text((pytester.path / name).read_text())
    (pytester.path / "fork" / "test_d.py").write_text("def test_d():\n    assert 0\n")
    forked = pytester.runpytest(f"--cache-backend={fork}", *args, "--ff")
    forked.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure first"])
    forked.assert_outcomes(passed=2, failed=2, warnings=1)
    assert "NOPERM" in the_warning(forked)
    assert server.stored(project, "cache/lastfailed") == {
        "test_a.py::test_broken": True
    }
    # Clearing works for the CI user, within its namespace only.
    pytester.runpytest(f"--cache-backend={ci}", *args, "--cache-clear", "--co")
    assert server.stored(project, "cache/lastfailed") is None
    assert server.stored("github.com/o/other", "cache/lastfailed") == {}
