"""Redis URLs: the one parser behind checking, showing and connecting.

redis-py reads a URL with :func:`urllib.parse.urlparse`: the user name and
password are what comes before the *last* ``@`` of the network location,
which ends at the first ``/``, ``?`` or ``#``; query values are
percent-decoded by :func:`urllib.parse.parse_qs` and unknown ones passed on
to the connection as strings.  :class:`RedisURL` parses the same way, so the
fields it checks and shows are the fields redis-py would use, then refuses
what redis-py would silently misread (an unencoded ``/``, ``?`` or ``#`` in
a password moves the rest of it into the path or query) or only reject at
the first connection (unknown or malformed query parameters, TLS options on
a plain URL).  :meth:`RedisURL.connection_options` gives redis-py keyword
arguments built from that same parse: what was checked is what connects.

:func:`redact` shows any string with its password fields masked; every
message about a URL goes through it.  It never relies on finding the
password's text elsewhere in a message: masking works on fields.

Kept free of third-party imports: it runs at pytest start-up to check the
configured URL, long before (and even without) redis-py being imported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any
from typing import NoReturn
from typing import final
from urllib.parse import unquote
from urllib.parse import urlparse

#: Schemes redis-py understands: plain TCP, TLS and a Unix socket.
SCHEMES = ("redis", "rediss", "unix")
REDACTED = "***"
DEFAULT_PORT = 6379

_FORMS = (
    "redis://[[user]:password@]host[:port][/db], rediss://... (TLS) "
    "or unix://[[user]:password@]/path/to/socket[?db=N]"
)
_ENCODE_HINT = (
    "percent-encode these characters in a user name or password: "
    "'@' as %40, '/' as %2F, '?' as %3F, '#' as %23, ':' as %3A"
)


class InvalidRedisURL(ValueError):
    """A configured Redis URL cannot be used; the message shows it without secrets."""


# -- showing ---------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` (a URL, or what was given as one) with every secret field masked.

    The user information runs from after ``//`` to the *last* ``@``, as
    redis-py reads it for every URL this module accepts; for a malformed
    URL that boundary is the cautious one (it can only mask more).  What
    follows a ``:`` there is the password; a user information without
    ``:`` is masked whole, as some clients read it as a password.  Query
    parameters whose name mentions a password keep only their name, a port
    that is not a number (likely a password missing its ``@host``) is
    masked along with everything after it, and so is a ``#`` fragment.
    """
    sep = text.find("//")
    start = sep + 2 if sep >= 0 else 0
    at = text.rfind("@")
    if at >= start:
        user, colon, _ = text[start:at].partition(":")
        head = text[:start] + (f"{user}:{REDACTED}" if colon else REDACTED) + "@"
        rest = text[at + 1 :]
    else:
        head, rest = text[:start], text[start:]
    cut = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    hostport, tail = rest[:cut], rest[cut:]
    port = _port_text(hostport)
    if port is not None and not _is_number(port):
        return f"{head}{hostport[: len(hostport) - len(port)]}{REDACTED}"
    tail, hash_, _ = tail.partition("#")
    path, question, query = tail.partition("?")
    shown = head + hostport + path
    if question:
        shown += "?" + "&".join(_mask_parameter(part) for part in query.split("&"))
    if hash_:
        shown += "#" + REDACTED
    return shown


def _port_text(hostport: str) -> str | None:
    """The text after the host's ``:``, as urlparse splits it; ``None`` if none."""
    if hostport.startswith("["):
        _, bracket, after = hostport.partition("]")
        if not bracket:
            return None
        return after[1:] if after.startswith(":") else None
    _, colon, port = hostport.partition(":")
    return port if colon else None


def _is_number(text: str) -> bool:
    return text == "" or (text.isascii() and text.isdigit())


def _mask_parameter(part: str) -> str:
    name, eq, _ = part.partition("=")
    if not eq:
        # Not name=value: likely the tail of a password with a raw '&' or '?'.
        return REDACTED if part else part
    if _is_secret(unquote(name.replace("+", " "))):
        return f"{name}={REDACTED}"
    return part


def _is_secret(name: str) -> bool:
    return "password" in name.lower()


# -- query parameters ------------------------------------------------------


def _seconds(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError
    return value


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError
    return int(text)


_TRUE = ("1", "true", "yes", "y", "t", "on")
_FALSE = ("0", "false", "no", "n", "f", "off")


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError


def _client_name(text: str) -> str:
    # The server refuses names with spaces or newlines (CLIENT SETNAME).
    if not text.isprintable() or " " in text:
        raise ValueError
    return text


def _protocol(text: str) -> int:
    if text not in ("2", "3"):
        raise ValueError
    return int(text)


def _text(text: str) -> str:
    return text


def _cert_reqs(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("none", "optional", "required"):
        raise ValueError
    return lowered


def _existing_path(text: str) -> str:
    if not os.path.exists(text):
        raise FileNotFoundError
    return text


#: name -> (parser, what it accepts, TLS only).  Anything else is refused:
#: redis-py would hand it to the connection, which fails at first use.
PARAMETERS: dict[str, tuple[Callable[[str], Any], str, bool]] = {
    "db": (_count, "a database number", False),
    "socket_timeout": (_seconds, "a number of seconds greater than 0", False),
    "socket_connect_timeout": (_seconds, "a number of seconds greater than 0", False),
    "socket_keepalive": (_flag, "true or false", False),
    "health_check_interval": (_count, "a whole number of seconds", False),
    "client_name": (_client_name, "a name without spaces", False),
    "protocol": (_protocol, "2 or 3", False),
    "username": (_text, "a user name", False),
    "password": (_text, "a password", False),
    "ssl_cert_reqs": (_cert_reqs, "none, optional or required", True),
    "ssl_check_hostname": (_flag, "true or false", True),
    "ssl_ca_certs": (_existing_path, "an existing file", True),
    "ssl_ca_path": (_existing_path, "an existing directory", True),
    "ssl_certfile": (_existing_path, "an existing file", True),
    "ssl_keyfile": (_existing_path, "an existing file", True),
    "ssl_password": (_text, "a password", True),
    "ssl_ciphers": (_text, "an OpenSSL cipher list", True),
}


# -- parsing ---------------------------------------------------------------


@final
class RedisURL:
    """A checked Redis URL.  Its ``repr`` and ``str`` never show the password.

    :raises InvalidRedisURL: naming what is wrong, with the URL redacted.
    """

    __slots__ = (
        "_password",
        "address",
        "db",
        "host",
        "options",
        "path",
        "port",
        "redacted",
        "scheme",
        "username",
    )

    def __init__(self, raw: str) -> None:
        #: The URL as messages show it: every secret field masked.
        self.redacted = redact(raw)
        scheme, sep, _ = raw.partition("://")
        if not sep or scheme not in SCHEMES:
            what = (
                repr(self.redacted)
                if sep
                else "value (not shown: it has no scheme:// and may be a secret)"
            )
            raise InvalidRedisURL(
                f"unsupported cache backend URL {what}: expected {_FORMS}"
            )
        self.scheme = scheme
        try:
            parts = urlparse(raw)
        except ValueError:
            # Only an unbalanced '[' gets here; urlparse's message quotes
            # nothing, but it is not ours to vouch for.
            self._refuse("has an unbalanced '[' in its host")
        if "@" in parts.path + parts.query + parts.fragment:
            self._refuse(f"has an '@' after its host; {_ENCODE_HINT}")
        if parts.fragment or raw.endswith("#"):
            self._refuse(f"has a '#' part, which redis-py ignores; {_ENCODE_HINT}")
        try:
            port = parts.port
        except ValueError:
            # The port's text is not shown: it is often a password whose
            # '@host' is missing or whose ':' was not encoded.
            self._refuse(
                "has an invalid port (not shown: it may be part of a password); "
                f"use a number from 1 to 65535, and {_ENCODE_HINT}"
            )
        if port == 0:
            self._refuse("has port 0; use a number from 1 to 65535")
        self.options = self._parse_query(parts.query)
        username = self.options.pop("username", None)
        password = self.options.pop("password", None)
        # As redis-py: the user information wins over the query's.
        if parts.username:
            username = unquote(parts.username)
        if parts.password:
            password = unquote(parts.password)
        self.username: str | None = username
        self._password: str | None = password
        db = self.options.pop("db", None)
        if scheme == "unix":
            if parts.hostname or port is not None:
                self._refuse(
                    "names a host; a unix:// URL names a socket path: "
                    "unix:///path/to/socket"
                )
            self.path: str | None = unquote(parts.path)
            if not self.path:
                self._refuse("has no socket path: unix:///path/to/socket")
            self.host: str | None = None
            self.port: int | None = None
            #: Where the server is, as warnings and errors name it.
            self.address = self.path
        else:
            self.path = None
            self.host = unquote(parts.hostname) if parts.hostname else "localhost"
            self.port = port or DEFAULT_PORT
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.address = f"{host}:{self.port}"
            from_path = self._path_db(unquote(parts.path))
            if db is None:
                db = from_path
            elif from_path is not None and from_path != db:
                self._refuse(
                    f"gives database {from_path} in its path and {db} in ?db=; give one"
                )
        self.db: int = db or 0

    def _refuse(self, problem: str) -> NoReturn:
        raise InvalidRedisURL(f"cache backend URL {self.redacted!r} {problem}")

    def _path_db(self, path: str) -> int | None:
        number = path.strip("/")
        if not number:
            return None
        if not (number.isascii() and number.isdigit()):
            self._refuse(
                "has a path that is not a database number: use e.g. "
                f"redis://host:6379/0 ({_ENCODE_HINT})"
            )
        return int(number)

    def _parse_query(self, query: str) -> dict[str, Any]:
        options: dict[str, Any] = {}
        seen: set[str] = set()
        for part in query.split("&") if query else ():
            if not part:
                continue
            raw_name, eq, raw_value = part.partition("=")
            if not eq:
                self._refuse(
                    "has a query part without '=' (not shown: it may be part of "
                    f"a password); use ?name=value, and {_ENCODE_HINT}"
                )
            name = unquote(raw_name.replace("+", " "))
            shown = f"{name[:40]!r}"
            if name in seen:
                self._refuse(f"gives the query parameter {shown} twice")
            seen.add(name)
            spec = PARAMETERS.get(name)
            if spec is None:
                known = ", ".join(sorted(PARAMETERS))
                self._refuse(
                    f"has an unknown query parameter {shown}; known parameters: {known}"
                )
            parse, accepted, tls_only = spec
            if tls_only and self.scheme != "rediss":
                self._refuse(
                    f"sets the TLS option {shown} on a {self.scheme}:// URL; "
                    "TLS options need a rediss:// URL"
                )
            if not raw_value:
                # parse_qs drops empty values, so redis-py ignores them: a
                # variable that expanded to nothing leaves the default.
                continue
            value = unquote(raw_value.replace("+", " "))
            try:
                options[name] = parse(value)
            except (ValueError, OSError):
                self._refuse(f"has an invalid {shown}: it must be {accepted}")
        return options

    @property
    def password(self) -> str | None:
        """The password, for redis-py and for tests; never put it in a message."""
        return self._password

    def connection_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`redis.Redis` built from this parse."""
        options: dict[str, Any] = {"db": self.db}
        if self.username is not None:
            options["username"] = self.username
        if self._password is not None:
            options["password"] = self._password
        if self.scheme == "unix":
            options["unix_socket_path"] = self.path
        else:
            options["host"] = self.host
            options["port"] = self.port
        if self.scheme == "rediss":
            options["ssl"] = True
        options.update(self.options)
        return options

    def __repr__(self) -> str:
        return f"RedisURL({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted
