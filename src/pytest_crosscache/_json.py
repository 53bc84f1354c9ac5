"""JSON encoding of cache values, with errors that name the key at fault."""

from __future__ import annotations

import json
from typing import Any
from typing import NoReturn


def _refuse(obj: object) -> NoReturn:
    raise TypeError(
        f"an object of type {type(obj).__name__!r} is not JSON-serializable"
    )


def encode(key: str, value: object) -> bytes:
    """Serialise ``value`` the way pytest does (UTF-8, indent 2), or raise.

    Nothing is written when this raises, so a bad value never replaces a
    good one.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, indent=2, default=_refuse)
        return text.encode("utf-8")
    except TypeError as exc:
        raise TypeError(
            f"cannot store the value for cache key {key!r}: {exc}; values must be "
            "JSON types (dict with str keys, list, str, int, float, bool, None)"
        ) from None
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"cannot store the value for cache key {key!r}: it contains a lone "
            f"surrogate ({exc.object[exc.start : exc.end]!r}) that UTF-8 cannot encode"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            f"cannot store the value for cache key {key!r}: {exc}"
        ) from None


def decode(data: bytes) -> Any:
    """Parse stored bytes; ``ValueError`` or ``RecursionError`` if corrupt."""
    return json.loads(data)


def storable(text: str) -> bool:
    """Whether ``text`` can be stored: UTF-8 has no form for lone surrogates.

    JSON escapes (``"\\udcff"``) read back as such text, so a record read
    from disk or a server may hold ids that cannot be written again.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def drop_unstorable(key: str, ids: list[str]) -> list[str]:
    """``ids`` without those that cannot be stored, with a warning naming them."""
    odd = [item for item in ids if not storable(item)]
    if not odd:
        return ids
    from pytest_crosscache._warnings import warn_cache

    shown = ", ".join(ascii(item) for item in odd[:5])
    more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
    warn_cache(
        f"dropped node ids from {key!r} that cannot be stored as UTF-8 "
        f"(lone surrogates): {shown}{more}"
    )
    return [item for item in ids if storable(item)]
