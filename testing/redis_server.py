"""A throw-away ``redis-server`` on a loopback port, for the Redis backend's tests.

Nothing is persisted (``--save '' --appendonly no``); a server can be
killed and restarted on the same port to play an outage.  Under CI (the
``CI`` environment variable set) a missing ``redis-server`` binary or
redis-py fails the tests instead of skipping them, so the Redis backend is
never silently left untested there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

#: The password every test server requires: tests check it never leaks.
PASSWORD = "s3cret-Pa55word"


def require_redis() -> str:
    """The ``redis-server`` binary; skip (fail under CI) when it or redis-py is missing."""
    binary = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    missing = []
    if binary is None:
        missing.append("the redis-server binary (apt-get install redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        missing.append("redis-py (pip install 'pytest-crosscache[redis]')")
    if missing:
        message = "Redis backend tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must provide them", pytrace=False)
        pytest.skip(message)
    assert binary is not None
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; ``url`` includes the password."""

    def __init__(
        self,
        workdir: Path,
        *,
        password: str | None = PASSWORD,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        self.binary = require_redis()
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.password = password
        #: (CA certificate, server certificate, server key) for a TLS server.
        self.tls = tls
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        # Percent-encoded, so that passwords with '@', '/', '?' or '#' work.
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        host = "localhost" if self.tls else "127.0.0.1"
        query = f"?ssl_ca_certs={self.tls[0]}" if self.tls else ""
        return f"{scheme}://{auth}{host}:{self.port}/0{query}"

    @property
    def address(self) -> str:
        return f"{'localhost' if self.tls else '127.0.0.1'}:{self.port}"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            ca, cert, key = self.tls
            args += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(ca),
                "--tls-auth-clients",
                "no",
            ]
        else:
            args += ["--port", str(self.port)]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready()
        return self

    def client(self):  # -> redis.Redis
        import redis

        return redis.Redis.from_url(self.url)

    def stored(self, namespace: str, key: str) -> object:
        """The JSON value a session stored under ``key`` in ``namespace``, or None."""
        client = self.client()
        try:
            # The namespace is percent-encoded in the key (no '/' or ':').
            data = client.get(f"crosscache:{{{quote(namespace, safe='')}}}:v:{key}")
        finally:
            client.close()
        return None if data is None else json.loads(data)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                log = self.workdir / "redis.log"
                text = log.read_text() if log.exists() else ""
                raise RuntimeError(f"redis-server exited early:\n{text}")
            try:
                client = self.client()
                client.ping()
                client.close()
                return
            except Exception as exc:
                last = exc
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer in time: {last}")

    def kill(self) -> None:
        """Stop the server at once (SIGKILL): an outage."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> RedisServer:
        self.kill()
        return self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
