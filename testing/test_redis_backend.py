"""RedisBackend against a real redis-server: values, tiers, locks, outages, TLS."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_crosscache import Cache
from pytest_crosscache import DirectoryBackend
from pytest_crosscache.backends.redis import RedisBackend
from redis_server import PASSWORD
from redis_server import RedisServer

KEY = "cache/lastfailed"

MakeBackend = Callable[..., RedisBackend]


@pytest.fixture
def make_backend(redis_server, redis_namespace, tmp_path) -> MakeBackend:
    """Backends of one namespace on the shared server; ``machine`` picks a cache dir."""

    def make(machine: str = "a", *, url: str | None = None, **kwargs) -> RedisBackend:
        return RedisBackend.from_url(
            url or redis_server.url,
            namespace=kwargs.pop("namespace", redis_namespace),
            cachedir=tmp_path / machine / ".pytest_cache",
            **kwargs,
        )

    return make


def redis_keys(server: RedisServer) -> list[str]:
    client = server.client()
    try:
        return sorted(name.decode() for name in client.keys("*"))
    finally:
        client.close()


def test_values_are_the_bytes_the_directory_backend_writes(
    make_backend: MakeBackend, tmp_path: Path, redis_server
) -> None:
    backend = make_backend()
    value = {"t.py::test_ü[1]": True, "nested": [1, 2.5, None, "x"]}
    Cache(tmp_path / "a", backend).set("my/value", value)
    Cache(tmp_path / "plain", DirectoryBackend(tmp_path / "plain")).set(
        "my/value", value
    )
    expected = (tmp_path / "plain" / "v" / "my" / "value").read_bytes()
    client = redis_server.client()
    stored = client.get(f"crosscache:{{{backend.namespace}}}:v:my/value")
    assert stored == expected
    # Written through to the local directory too, in pytest's layout.
    assert (backend.local.root / "v" / "my" / "value").read_bytes() == expected
    assert Cache(tmp_path / "a", make_backend()).get("my/value", None) == value


def test_read_write_delete_keys_modified_clear(make_backend: MakeBackend) -> None:
    backend = make_backend()
    assert backend.read("x/y") is None
    assert backend.modified("x/y") is None
    before = time.time()
    backend.write("x/y", b"1")
    backend.write("x/z", b"2")
    backend.write("top", b"3")
    written = backend.modified("x/y")
    assert written is not None
    assert before - 1 <= written <= time.time() + 1
    assert backend.read("x/y") == b"1"
    assert sorted(backend.keys()) == ["top", "x/y", "x/z"]
    assert sorted(backend.keys("x/*")) == ["x/y", "x/z"]
    assert list(backend.keys("y")) == ["x/y"]
    assert backend.delete("x/y") is True
    assert backend.delete("x/y") is False
    assert backend.read("x/y") is None
    assert not (backend.local.root / "v" / "x" / "y").exists()
    backend.clear()
    assert list(backend.keys()) == []
    assert backend.read("top") is None
    assert not (backend.local.root / "v").exists()


def test_max_age_uses_the_stored_write_time(
    make_backend: MakeBackend, tmp_path: Path, redis_server
) -> None:
    cache = Cache(tmp_path, make_backend())
    cache.set("k", 1)
    assert cache.get("k", None, max_age=60) == 1
    backend = cache.backend
    assert isinstance(backend, RedisBackend)
    assert backend.modified("k") is not None
    # An old write time makes the value stale, whatever the local file says.
    client = redis_server.client()
    client.hset(f"crosscache:{{{backend.namespace}}}:meta", "k", time.time() - 3600)
    assert cache.get("k", None, max_age=60) is None
    assert cache.get("k", None, max_age=7200) == 1


def test_namespaces_are_apart_and_bound_every_key(
    make_backend: MakeBackend, redis_server, redis_namespace: str
) -> None:
    # A namespace that looks like another one plus a key prefix cannot reach it.
    # Earlier tests in this process leave keys of their own namespaces on the
    # shared server; only what this test adds is looked at.
    before = set(redis_keys(redis_server))
    first = make_backend(namespace=redis_namespace)
    tricky = make_backend(namespace=f"{redis_namespace}}}:v:x")
    first.write("x/a", b"1")
    tricky.write("a", b"2")
    assert first.read("x/a") == b"1"
    assert sorted(first.keys()) == ["x/a"]
    assert sorted(tricky.keys()) == ["a"]
    tricky.clear()
    assert first.read("x/a") == b"1"
    with first.lock("x/a"):
        names = sorted(set(redis_keys(redis_server)) - before)
    # The value, index and lock of first; tricky cleared its own.
    assert len(names) == 3, names
    for name in names:
        assert name.startswith(f"crosscache:{{{redis_namespace}}}:"), name
    first.clear()
    assert set(redis_keys(redis_server)) - before == set()


def test_no_password_in_repr_describe_location_or_errors(
    make_backend: MakeBackend, tmp_path: Path
) -> None:
    backend = make_backend()
    texts = [
        repr(backend),
        backend.describe(),
        backend.location("a/b"),
        repr(Cache(tmp_path, backend)),
        repr(backend.url),
    ]
    other = make_backend("b", lock_timeout=0.2)
    with backend.lock("k"), pytest.raises(TimeoutError) as info, other.lock("k"):
        pass
    texts.append(str(info.value))
    assert backend.url.address in str(info.value)
    assert "'k'" in str(info.value)
    for text in texts:
        assert PASSWORD not in text


def test_lock_waits_and_excludes_updates(make_backend: MakeBackend) -> None:
    holder, other = make_backend("a"), make_backend("b")
    events: list[str] = []

    def update() -> None:
        other.update("n", lambda old: b"updated")
        events.append("updated")

    with holder.lock("n"):
        thread = threading.Thread(target=update)
        thread.start()
        time.sleep(0.3)
        events.append("released")
    thread.join(10)
    assert events == ["released", "updated"]
    assert holder.read("n") == b"updated"
    with pytest.raises(TimeoutError, match="'n'"), holder.lock("n"):
        make_backend("c", lock_timeout=0.2).update("n", lambda old: b"x")


def test_concurrent_updates_all_count(make_backend: MakeBackend) -> None:
    backends = [make_backend(f"m{i}") for i in range(4)]

    def bump(backend: RedisBackend) -> None:
        cache = Cache(backend.local.root, backend)
        for _ in range(25):
            cache.update("count", lambda n: n + 1, 0)

    threads = [threading.Thread(target=bump, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert json.loads(backends[0].read("count") or b"0") == 100


def test_get_or_set_runs_the_factory_once(
    make_backend: MakeBackend, tmp_path: Path
) -> None:
    calls: list[int] = []

    def factory() -> int:
        calls.append(1)
        time.sleep(0.2)
        return 42

    results: list[int] = []

    def worker(machine: str) -> None:
        cache = Cache(tmp_path / machine, make_backend(machine))
        results.append(cache.get_or_set("expensive", factory))

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [42, 42, 42]
    assert calls == [1]


# --- the two tiers ---------------------------------------------------------


@pytest.mark.parametrize("local", ["local-hit", "local-miss"])
@pytest.mark.parametrize("remote", ["remote-hit", "remote-miss"])
@pytest.mark.parametrize(
    "then", ["read", "write-on-other-machine", "concurrent-update"]
)
def test_tiers(make_backend: MakeBackend, local: str, remote: str, then: str) -> None:
    """Redis answers whenever it can; a local value never shadows a remote one."""
    machine_a, machine_b = make_backend("a"), make_backend("b")
    if local == "local-hit":
        # E.g. left by an older session, or by pytest's own provider.
        machine_a.local.write(KEY, b'{"stale::local": true}')
    if remote == "remote-hit":
        machine_b.write(KEY, b'{"remote::one": true}')
    remote_value = b'{"remote::one": true}' if remote == "remote-hit" else None

    if then == "read":
        assert machine_a.read(KEY) == remote_value
        assert Cache(machine_a.local.root, machine_a).get(KEY, "absent") == (
            {"remote::one": True} if remote_value else "absent"
        )
    elif then == "write-on-other-machine":
        machine_a.read(KEY)
        machine_b.write(KEY, b'{"newer": true}')
        assert machine_a.read(KEY) == b'{"newer": true}'
        assert Cache(machine_a.local.root, machine_a).get(KEY, None) == {"newer": True}
    else:
        start = json.loads(remote_value or b"{}")
        added: dict[str, list[str]] = {"a": [], "b": []}

        def record(backend: RedisBackend, name: str) -> None:
            cache = Cache(backend.local.root, backend)
            for i in range(10):
                nodeid = f"test_{name}.py::t{i}"
                added[name].append(nodeid)
                cache.update(KEY, lambda d, n=nodeid: {**d, n: True}, {})

        threads = [
            threading.Thread(target=record, args=(machine_a, "a")),
            threading.Thread(target=record, args=(machine_b, "b")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        expected = {**start, **{n: True for n in added["a"] + added["b"]}}
        assert json.loads(machine_a.read(KEY) or b"{}") == expected
        assert json.loads(machine_b.read(KEY) or b"{}") == expected
        # The local copies hold what each machine last wrote: its own entries.
        for name, backend in (("a", machine_a), ("b", machine_b)):
            mirrored = json.loads(backend.local.read(KEY) or b"{}")
            assert set(added[name]) <= set(mirrored)


# --- outages ---------------------------------------------------------------


@contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        yield record


def cache_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in record
        if issubclass(w.category, pytest.PytestCacheWarning)
    ]


@contextmanager
def refusing_listener() -> Iterator[tuple[int, list[int]]]:
    """A loopback port that accepts connections and closes them at once.

    Yields the port and a list that grows by one per connection, so a test
    can count how often a client tried to reach a dead server.
    """
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    accepted: list[int] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        done.set()
        thread.join()
        listener.close()


def test_unreachable_at_start_costs_one_warning_and_no_retries(
    tmp_path: Path,
) -> None:
    # "Little time" is checked as little work: after the first failed
    # attempt the session stops trying, whatever this machine's speed.
    with refusing_listener() as (port, accepted):
        backend = RedisBackend.from_url(
            f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
            namespace="ns",
            cachedir=tmp_path / ".pytest_cache",
        )
        cache = Cache(tmp_path, backend)
        with recorded() as record:
            for i in range(200):
                cache.set(f"k/{i}", i)
            assert cache.get("k/7", None) == 7
            cache.update("k/7", lambda n: n + 1, 0)
        attempts = len(accepted)
    # redis-py may retry its first command once; 200 writes must not each
    # try again.
    assert 1 <= attempts <= 3, attempts
    messages = cache_warnings(record)
    assert len(messages) == 1, messages
    assert f"127.0.0.1:{port}" in messages[0]
    assert PASSWORD not in messages[0]
    assert json.loads((tmp_path / ".pytest_cache/v/k/7").read_bytes()) == 8


def test_values_written_during_an_outage_reach_redis_later(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    server = own_redis_server

    def machine(name: str) -> RedisBackend:
        return RedisBackend.from_url(
            server.url, namespace="proj", cachedir=tmp_path / name / ".pytest_cache"
        )

    a = machine("a")
    a.write(KEY, b'{"t::old1": true, "t::old2": true}')
    a.write("plugin/scalar", b"1")
    # Session 1 on machine a: reads, then loses Redis before writing.
    session = machine("a")
    assert session.read(KEY) == b'{"t::old1": true, "t::old2": true}'
    server.kill()
    with recorded() as record:
        cache = Cache(session.local.root, session)
        # Fixed old1, new failure new1.
        cache.update(
            KEY,
            lambda d: {
                **{k: v for k, v in d.items() if k != "t::old1"},
                "t::new1": True,
            },
            {},
        )
        cache.set("plugin/scalar", 2)
        cache.set("plugin/fresh", "x")
    assert len(cache_warnings(record)) == 1
    assert server.address in cache_warnings(record)[0]
    # The outage is over; Redis lost its data and machine b writes first.
    server.start()
    b = machine("b")
    b.write(KEY, b'{"t::other": true}')
    # The next session on machine a replays what the outage recorded.
    later = machine("a")
    assert json.loads(later.read(KEY) or b"") == {"t::other": True, "t::new1": True}
    assert later.read("plugin/scalar") == b"2"
    assert later.read("plugin/fresh") == b'"x"'
    assert not list((later.local.root / ".crosscache-redis").glob("journal-*.json"))


def test_redis_lost_mid_session_warns_once(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    backend = RedisBackend.from_url(
        own_redis_server.url, namespace="proj", cachedir=tmp_path / ".pytest_cache"
    )
    cache = Cache(tmp_path, backend)
    cache.set("a", 1)
    own_redis_server.kill()
    with recorded() as record:
        for i in range(50):
            cache.set(f"b/{i}", i)
            assert cache.get(f"b/{i}", None) == i
        with cache.lock("a"):
            pass
        assert sorted(backend.keys("a")) == ["a"]
    assert len(cache_warnings(record)) == 1


def test_tls(tmp_path: Path, redis_namespace: str) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    files = (tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    ca.cert_pem.write_to_path(str(files[0]))
    cert.cert_chain_pems[0].write_to_path(str(files[1]))
    cert.private_key_pem.write_to_path(str(files[2]))
    server = RedisServer(tmp_path / "tls", tls=files).start()
    try:
        assert server.url.startswith("rediss://")
        backend = RedisBackend.from_url(
            server.url, namespace=redis_namespace, cachedir=tmp_path / "c"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            backend.write("k", b"1")
            assert backend.read("k") == b"1"
        # Without trusting the CA, TLS refuses the server: a warning, local values.
        untrusted = RedisBackend.from_url(
            server.url.split("?")[0], namespace=redis_namespace, cachedir=tmp_path / "d"
        )
        with pytest.warns(pytest.PytestCacheWarning, match="unreachable") as record:
            assert untrusted.read("k") is None
        assert PASSWORD not in str(record[0].message)
    finally:
        server.stop()
