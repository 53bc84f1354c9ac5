"""What a Redis failure is, said in words that quote no value.

redis-py's messages can hold what a command carried: a failed transaction
is annotated with the command and its arguments (our values), and errors
about the connection repeat parts of what was configured.  Warnings
therefore never show an exception's text: :func:`describe` names the
failure from its class, the server's error code and the operating
system's error number.

Every failure falls in one of these kinds, which decide what the backend
does (see :mod:`pytest_crosscache.backends.redis`):

``unreachable``, ``authentication``, ``database``, ``error``
    The session stops asking the server and keeps its cache locally, with
    one warning; the outage journal sends what it wrote later.
``refused``
    The server answers but will not write (out of memory, a read-only
    replica, an ACL without write rights): reads still come from it,
    writes stay local and are journaled.

None of them stops a session: a server's answer can change without the
configuration changing (a rotated secret, an edited ACL, memory freed, a
failover), and a test run's outcome never depends on its cache.  Mistakes
in the URL itself are caught before connecting, as usage errors
(:mod:`._redis_url`).
"""

from __future__ import annotations

import errno
import os
from types import ModuleType
from typing import TYPE_CHECKING
from typing import final

if TYPE_CHECKING:
    from pytest_crosscache.backends._redis_url import RedisURL


@final
class Problem:
    """A failure's kind and a phrase that follows "cache backend Redis at HOST"."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text

    def __repr__(self) -> str:
        return f"Problem({self.kind!r}, {self.text!r})"


def describe(exc: BaseException, url: RedisURL) -> Problem:
    """Name ``exc``, raised by redis-py for ``url``, without quoting its message."""
    import redis.exceptions as errors

    name = type(exc).__name__
    message = str(exc)
    if isinstance(
        exc, _classes(errors, "AuthenticationError", "AuthorizationError")
    ) or (
        isinstance(exc, errors.ResponseError)
        and ("WRONGPASS" in message or "NOAUTH" in message)
    ):
        if url.password is None or "required" in message.lower():
            return Problem(
                "authentication",
                "requires a password and the URL gives none (authentication "
                "failed: NOAUTH)",
            )
        return Problem(
            "authentication",
            "refused the URL's user name or password (authentication failed: "
            f"{name}; the password is not shown)",
        )
    if isinstance(exc, _classes(errors, "OutOfMemoryError")):
        return Problem(
            "refused",
            "is out of memory and refuses writes (OOM: its maxmemory is reached "
            "and its eviction policy frees nothing)",
        )
    if isinstance(exc, _classes(errors, "ReadOnlyError")):
        return Problem(
            "refused", "is a read-only replica and refuses writes (READONLY)"
        )
    if isinstance(exc, _classes(errors, "NoPermissionError")):
        return Problem(
            "refused",
            "does not let the URL's user run this command on the namespace's "
            "keys (NOPERM: see the user's ACL)",
        )
    if isinstance(exc, _classes(errors, "BusyLoadingError")):
        return Problem(
            "unreachable", "is unreachable (it is still loading its data set)"
        )
    if isinstance(exc, errors.ResponseError) and "DB index" in message:
        return Problem(
            "database",
            f"has no database {url.db} (set by the URL's path or ?db=; "
            "its 'databases' setting limits them)",
        )
    if isinstance(exc, (errors.ConnectionError, errors.TimeoutError)):
        return Problem("unreachable", f"is unreachable ({_network_reason(exc)})")
    if isinstance(exc, errors.ResponseError):
        return Problem("error", f"answered a command with an error ({name})")
    return Problem("error", f"failed ({name})")


def _classes(module: ModuleType, *names: str) -> tuple[type[BaseException], ...]:
    # Older redis-py releases lack some of these classes.
    return tuple(getattr(module, name) for name in names if hasattr(module, name))


def _network_reason(exc: BaseException) -> str:
    """Why a connection failed, from the errors it was raised from."""
    import socket
    import ssl

    import redis.exceptions as errors

    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason if isinstance(cause.reason, str) else None
            return f"TLS failed: {reason or type(cause).__name__}"
        if isinstance(cause, ssl.CertificateError):
            return "TLS failed: certificate does not match the host"
        if isinstance(cause, socket.gaierror):
            return "its host name could not be resolved"
        if isinstance(cause, (socket.timeout, errors.TimeoutError)):
            return "timed out"
        if isinstance(cause, OSError) and cause.errno:
            code = errno.errorcode.get(cause.errno, str(cause.errno))
            return f"{os.strerror(cause.errno).lower()}, {code}"
        cause = cause.__cause__ or cause.__context__
    if "max number of clients" in str(exc):
        return "it has reached its maximum number of clients"
    return f"the connection failed: {type(exc).__name__}"
