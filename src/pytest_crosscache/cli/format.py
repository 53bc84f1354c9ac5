"""Durations and sizes as people write and read them (``7d``, ``12h``, ``3.2 KiB``)."""

from __future__ import annotations

import json
import re

#: Seconds per unit accepted in durations.
UNITS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}

_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: numbers with units, as in ``7d``, ``1h30m`` or ``45s``.

    :raises ValueError: naming the text and the accepted units.
    """
    compact = text.strip().lower()
    pos = 0
    total = 0.0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        total += float(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if not compact or pos != len(compact):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, s, m, h, d or w "
            "(for example 45s, 30m, 12h, 7d or 1h30m)"
        )
    return total


#: Bytes per unit accepted in sizes (binary, as ``format_size`` prints them).
SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?")


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional unit, ``512MiB``, ``2G``, ``100k``.

    Units are binary (``k`` is 1024 bytes), with or without ``iB`` or ``B``.

    :raises ValueError: naming the text and the accepted units.
    """
    match = _SIZE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(
            f"invalid size {text!r}: use a number of bytes with an optional unit, "
            "k, M, G or T (for example 512MiB or 2G)"
        )
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])


def format_age(seconds: float) -> str:
    """A short age such as ``5s``, ``12m``, ``3h`` or ``4d``."""
    seconds = max(seconds, 0.0)
    for unit in ("d", "h", "m"):
        if seconds >= UNITS[unit]:
            return f"{int(seconds // UNITS[unit])}{unit}"
    return f"{int(seconds)}s"


def format_size(size: int) -> str:
    """A byte count for people: ``812 B``, ``3.2 KiB``, ``1.0 MiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def dump(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def print_table(header: tuple[str, str, str], rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for key, size, age in [header, *rows]:
        print(f"{key:<{widths[0]}}  {size:>{widths[1]}}  {age:>{widths[2]}}")
