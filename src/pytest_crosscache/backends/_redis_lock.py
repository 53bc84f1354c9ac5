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
# Renewal also takes back a lease that ran out while nobody else took the
# lock (2), so a holder cut off for a while keeps it if it can; 0 means
# another process holds the lock now.
_RENEW = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""


def acquire(
    client: redis.Redis,
    name: str,
    wait: float,
    timed_out: Callable[[], Exception],
    lease: float = LEASE_SECONDS,
) -> Lease:
    """Take the lock ``name`` within ``wait`` seconds, else raise ``timed_out()``."""
    token = os.urandom(16).hex()
    deadline = time.monotonic() + wait
    pause = Backoff()
    lease_ms = max(1, int(lease * 1000))
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
    """A held Redis lock, renewed in the background until released.

    A renewal that fails (the server is slow, paused or unreachable for a
    moment) is retried sooner rather than given up: a lease left to run out
    while its holder still works is how two processes would end up
    computing the same value at once.  Whether exclusivity held is told
    by :attr:`lost` (another process took the lock: it stops renewing) and
    :attr:`lapsed` (the lease ran out and was taken back; another process
    may have held the lock in between).
    """

    def __init__(self, client: redis.Redis, name: str, token: str, ms: int) -> None:
        self.client = client
        self.name = name
        self.token = token
        self.ms = ms
        self.acquired = time.monotonic()
        #: Another process holds the lock now.
        self.lost = False
        #: The lease ran out before a renewal took it back.
        self.lapsed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, name=f"crosscache-lease {name}", daemon=True
        )
        self._thread.start()

    def _renew(self) -> None:
        every = self.ms / 3000
        interval = every
        while not self._stop.wait(interval):
            try:
                held = self.client.eval(_RENEW, 1, self.name, self.token, self.ms)
            except Exception:
                # Try again soon, as long as the lease may still be alive.
                interval = min(every, 0.25)
                continue
            interval = every
            if held == 2:
                self.lapsed = True
            elif held != 1:
                self.lost = True
                return

    @property
    def exclusive(self) -> bool:
        """Whether no other process can have held the lock since it was taken."""
        return not (self.lost or self.lapsed)

    def release(self) -> None:
        """Stop renewing and free the lock if it is still ours."""
        self._stop.set()
        self._thread.join()
        if not self.client.eval(_RELEASE, 1, self.name, self.token):
            # Not ours any more: it ran out and another process took it.
            self.lost = True
