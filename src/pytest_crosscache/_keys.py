"""Validation and normalisation of cache keys and ``mkdir`` names.

The rules follow pytest's own provider: a key is refused only when pytest
refuses it (it is not a string, or it resolves outside the values
directory).  Keys that pytest accepts but that cannot be stored (a file
name too long for the file system, the values directory itself) are not
errors: reading them gives the default and writing them a
``PytestCacheWarning``, as with pytest.
"""

from __future__ import annotations

from pytest_crosscache.fs.atomic import TEMP_SUFFIX

#: The records pytest's provider keeps, and where ``cache.mkdir`` puts
#: directories: shared by the recorders, ``--cache-show`` and the command.
LASTFAILED_KEY = "cache/lastfailed"
NODEIDS_KEY = "cache/nodeids"
STEPWISE_KEY = "cache/stepwise"
DIRS_DIR = "d"
#: The test history's values live below this prefix (see history/store.py).
HISTORY_PREFIX = "crosscache/history"


def hides_history(glob: str) -> bool:
    """Whether listing ``glob`` leaves out the test history's values.

    The history is many values of bookkeeping (``crosscache history`` and
    friends show it readably), so ``--cache-show`` and ``crosscache show``
    list it only when the glob mentions it, as ``history/**/*`` does.
    """
    return "history" not in glob


def normalize_key(key: str, *, allow_nul: bool = False) -> str:
    """Return the canonical form of ``key`` or raise an error naming it.

    A key is a ``/``-separated relative path below the values directory.
    Empty and ``.`` segments are dropped and ``..`` cancels the segment
    before it, as :func:`os.path.normpath` would; a key that climbs out of
    the values directory (or is absolute) is refused, as pytest refuses it.
    The result may be ``""``: a key that names the values directory
    itself, which :func:`storage_problem` reports.

    :param allow_nul: keep a NUL character instead of refusing it; reads
        use this, because pytest's provider returns the default for such a
        key where it refuses to write one.
    """
    if not isinstance(key, str):
        raise TypeError(f"cache key must be a str, not {type(key).__name__}: {key!r}")
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
        parts.append(segment)
    if not allow_nul and "\0" in key:
        raise ValueError(f"cache key {key!r} contains a NUL character")
    return "/".join(parts)


def storage_problem(key: str) -> str | None:
    """Why the normalised ``key`` can never hold a value, or ``None`` if it can.

    Limits of the file system (such as the length of a name) are not
    checked here: the write itself reports them, with the operating
    system's own words, as pytest's provider does.
    """
    if not key:
        return "the key names the values directory itself"
    if key.rsplit("/", 1)[-1].endswith(TEMP_SUFFIX):
        return f"names ending in {TEMP_SUFFIX!r} are reserved for in-progress writes"
    return None


#: Most file systems refuse a single path component longer than this many bytes.
MAX_COMPONENT_BYTES = 255


def strict_key(key: str) -> str:
    """:func:`normalize_key` that also refuses keys that can hold no value.

    For the ``crosscache`` command, where a key is typed by a person who is
    better served by an error up front than by pytest's lenience.
    """
    normal = normalize_key(key)
    if not normal:
        raise ValueError(f"cache key {key!r} is empty; use e.g. 'myplugin/state'")
    problem = storage_problem(normal)
    if problem is not None:
        raise ValueError(f"cache key {key!r}: {problem}")
    for segment in normal.split("/"):
        if len(segment.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise ValueError(
                f"cache key {key!r}: segment {segment[:40]!r}... is longer than "
                f"{MAX_COMPONENT_BYTES} bytes, which file systems cannot store"
            )
    return normal


def check_dir_name(name: str) -> str:
    """Validate a name for ``Cache.mkdir``: one path component, nothing more.

    As with pytest, ``""`` and ``"."`` name the directories' parent
    directory itself, and a name the file system cannot hold fails with
    the :class:`OSError` of ``mkdir``.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"cache directory name must be a str, not {type(name).__name__}: {name!r}"
        )
    if "/" in name:
        raise ValueError(
            f"cache directory name {name!r} is not allowed to contain path separators"
        )
    if name == "..":
        raise ValueError(
            f"cache directory name {name!r} is not allowed to escape the cache "
            "directory"
        )
    if "\0" in name:
        raise ValueError(f"cache directory name {name!r} contains a NUL character")
    return name
