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
