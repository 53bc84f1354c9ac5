"""Validation and normalisation of cache keys and ``mkdir`` names."""

from __future__ import annotations

from pytest_crosscache.fs.atomic import TEMP_SUFFIX

# Most file systems refuse a single path component longer than this many bytes.
#: The records pytest's provider keeps, and where ``cache.mkdir`` puts
#: directories: shared by the recorders, ``--cache-show`` and the command.
LASTFAILED_KEY = "cache/lastfailed"
NODEIDS_KEY = "cache/nodeids"
STEPWISE_KEY = "cache/stepwise"
DIRS_DIR = "d"

MAX_COMPONENT_BYTES = 255


def normalize_key(key: str) -> str:
    """Return the canonical form of ``key`` or raise an error naming it.

    A key is a ``/``-separated relative path below the values directory.
    Empty and ``.`` segments are dropped and ``..`` cancels the segment
    before it, as a path would; a key that ends up empty or climbs out of
    the values directory is refused rather than silently mapped elsewhere.
    """
    if not isinstance(key, str):
        raise TypeError(f"cache key must be a str, not {type(key).__name__}: {key!r}")
    if "\0" in key:
        raise ValueError(f"cache key {key!r} contains a NUL character")
    if key.startswith("/"):
        raise ValueError(
            f"cache key {key!r} is absolute; keys are relative '/'-separated "
            "paths such as 'myplugin/state'"
        )
    parts: list[str] = []
    for segment in key.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise ValueError(
                    f"cache key {key!r} resolves outside the cache's values directory"
                )
            parts.pop()
            continue
        _check_component(key, segment)
        parts.append(segment)
    if not parts:
        raise ValueError(f"cache key {key!r} is empty; use e.g. 'myplugin/state'")
    return "/".join(parts)


def check_dir_name(name: str) -> str:
    """Validate a name for ``Cache.mkdir``: one path component, nothing more."""
    if not isinstance(name, str):
        raise TypeError(
            f"cache directory name must be a str, not {type(name).__name__}: {name!r}"
        )
    if "/" in name or "\\" in name:
        raise ValueError(
            f"cache directory name {name!r} is not allowed to contain path separators"
        )
    if name in ("", ".", ".."):
        raise ValueError(f"{name!r} is not a valid cache directory name")
    if "\0" in name:
        raise ValueError(f"cache directory name {name!r} contains a NUL character")
    _check_component(name, name)
    return name


def _check_component(whole: str, segment: str) -> None:
    if len(segment.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
        raise ValueError(
            f"cache key {whole!r}: segment {segment[:40]!r}... is longer than "
            f"{MAX_COMPONENT_BYTES} bytes, which file systems cannot store"
        )
    if segment.endswith(TEMP_SUFFIX):
        raise ValueError(
            f"cache key {whole!r}: names ending in {TEMP_SUFFIX!r} are reserved "
            "for in-progress writes"
        )
