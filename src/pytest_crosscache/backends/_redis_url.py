"""Redis URLs: which schemes we accept, and how to show one without its password.

Kept apart from :mod:`pytest_crosscache.backends.redis` and free of
third-party imports: it runs at pytest start-up to check the configured
URL, long before (and even without) redis-py being imported.
"""

from __future__ import annotations

import re
from typing import final
from urllib.parse import SplitResult
from urllib.parse import unquote
from urllib.parse import urlsplit

#: Schemes redis-py understands: plain TCP, TLS and a Unix socket.
SCHEMES = ("redis", "rediss", "unix")

# userinfo in "scheme://userinfo@host": everything after the user name is
# secret, and so is a lone userinfo (redis-py can take it as a password).
# Plain strings, compiled by re on first use: this module loads at start-up.
_USERINFO = r"(?P<scheme>//)(?P<userinfo>[^/@?#]*)@"
_PASSWORD_QUERY = r"(?i)(?P<name>[?&]password=)[^&#]*"
REDACTED = "***"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``; safe for any string."""

    def userinfo(match: re.Match[str]) -> str:
        user, colon, _ = match["userinfo"].partition(":")
        shown = f"{user}:{REDACTED}" if colon else REDACTED
        return f"{match['scheme']}{shown}@"

    url = re.sub(_USERINFO, userinfo, url, count=1)
    return re.sub(_PASSWORD_QUERY, lambda m: f"{m['name']}{REDACTED}", url)


@final
class RedisURL:
    """A checked Redis URL.  Its ``repr`` and ``str`` never show the password."""

    __slots__ = ("_raw", "address", "db", "redacted", "scheme")

    def __init__(self, raw: str) -> None:
        self.redacted = redact(raw)
        try:
            parts: SplitResult | None = urlsplit(raw)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in SCHEMES:
            raise ValueError(
                f"unsupported cache backend URL {self.redacted!r}: expected "
                "redis://[[user]:password@]host[:port][/db], "
                "rediss://... (TLS) or unix:///path/to/socket"
            )
        self._raw = raw
        self.scheme = parts.scheme
        if parts.scheme == "unix":
            self.address = parts.path
            self.db = 0
        else:
            try:
                port = parts.port or 6379
            except ValueError:
                raise ValueError(
                    f"cache backend URL {self.redacted!r} has an invalid port"
                ) from None
            #: ``host:port``, the server as warnings and errors name it.
            self.address = f"{parts.hostname or 'localhost'}:{port}"
            path = parts.path.strip("/")
            if path and not path.isdigit():
                raise ValueError(
                    f"cache backend URL {self.redacted!r}: the path must be a "
                    f"database number, not {path!r}"
                )
            self.db = int(path) if path else 0

    @property
    def secret(self) -> str:
        """The URL as given, password included: only for redis-py."""
        return self._raw

    def __repr__(self) -> str:
        return f"RedisURL({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted

    def scrub(self, text: str) -> str:
        """``text`` with this URL's password (if it has one) replaced."""
        text = text.replace(self._raw, self.redacted)
        try:
            password = urlsplit(self._raw).password
        except ValueError:
            password = None
        if password:
            for form in {password, unquote(password)}:
                text = text.replace(form, REDACTED)
        return text
