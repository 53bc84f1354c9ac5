"""Redis locks: taken with SET NX, renewed while held, released by token."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

#: A lock's lease.  The holder renews it while it lives; a killed holder's
#: lock frees itself after at most this long.
LEASE_SECONDS = 30.0

# Compare-and-delete / compare-and-extend: only the holder of the token
# may release or renew a lock.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


def acquire(
    client: redis.Redis, name: str, wait: float, timed_out: Callable[[], Exception]
) -> Lease:
    """Take the lock ``name`` within ``wait`` seconds, else raise ``timed_out()``."""
    token = os.urandom(16).hex()
    deadline = time.monotonic() + wait
    pause = Backoff()
    lease_ms = int(LEASE_SECONDS * 1000)
    while not client.set(name, token, nx=True, px=lease_ms):
        if time.monotonic() >= deadline:
            raise timed_out()
        pause.sleep()
    return Lease(client, name, token, lease_ms)


class Backoff:
    """Sleeps of 5 ms doubling up to 100 ms: quick when a lock is released soon."""

    def __init__(self) -> None:
        self.delay = 0.005

    def sleep(self) -> None:
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, 0.1)


class Lease:
    """A held Redis lock, renewed in the background until released."""

    def __init__(self, client: redis.Redis, name: str, token: str, ms: int) -> None:
        self.client = client
        self.name = name
        self.token = token
        self.ms = ms
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, name=f"crosscache-lease {name}", daemon=True
        )
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ms / 3000):
            try:
                self.client.eval(_RENEW, 1, self.name, self.token, self.ms)
            except Exception:
                return

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        self.client.eval(_RELEASE, 1, self.name, self.token)
