"""Escaping and the numbers, times and names of the page, as people read them.

Everything from the history is hostile input: a node id can hold markup,
quotes, control characters, lone surrogates or bidirectional overrides.
:func:`esc` is the only way data reaches the page.
"""

from __future__ import annotations

import html
import re
import time

from pytest_crosscache.history.flaky import short_revision

# Control characters and lone surrogates: invisible, or not encodable as
# UTF-8; and the bidirectional controls, which reorder what is shown (a
# "Trojan Source" node id reads as another).  They are shown as Python
# escapes, so the id stays recognisable.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def esc(text: str) -> str:
    """``text`` made safe for HTML text and for quoted attribute values."""
    return html.escape(_UNPRINTABLE.sub(_visible, text), quote=True)


def seconds(value: float) -> str:
    """A duration: ``0.8 ms``, ``420 ms``, ``3.2 s``, ``4 min 05 s``, ``2 h 10 min``."""
    if value < 0.001:
        return f"{value * 1000:.1f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    whole = round(value)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def when(epoch: float) -> str:
    """A moment in UTC, to the minute: ``2026-11-22 14:03 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def age(seconds_ago: float) -> str:
    """How long ago: ``just now``, ``5 min ago``, ``3 h ago``, ``4 days ago``."""
    seconds_ago = max(seconds_ago, 0.0)
    if seconds_ago < 60:
        return "just now"
    if seconds_ago < 3600:
        return f"{int(seconds_ago // 60)} min ago"
    if seconds_ago < 2 * 86400:
        return f"{int(seconds_ago // 3600)} h ago"
    return f"{int(seconds_ago // 86400)} days ago"


def revision(value: str | None) -> str:
    """A revision as people quote it: a commit's first seven hex digits."""
    return short_revision(value) if value else "unknown revision"


def count(value: int, noun: str, plural: str | None = None) -> str:
    """``1 test``, ``50,000 tests``."""
    word = noun if value == 1 else (plural or noun + "s")
    return f"{value:,} {word}"


def percent(ratio: float) -> str:
    """A ratio as a whole percentage."""
    return f"{ratio * 100:.0f}%"
