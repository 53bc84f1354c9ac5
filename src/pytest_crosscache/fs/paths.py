"""Names from data turned into paths that never lead outside their directory.

A cache holds names that others wrote: keys listed by a backend (a shared
Redis namespace), files in a shard downloaded as a CI artifact, node ids in
records, globs typed on the command line.  Every path made from such a name
is checked here, and only here:

* :func:`relative_parts` is the lexical check: a name is a canonical
  relative path (no ``..``, ``.`` or empty segments, not absolute, no NUL,
  text a file name can be made of);
* :func:`confined` adds the check on resolved paths: no symbolic link on
  the way below the trusted directory may lead outside it;
* :func:`files_below` lists the files below a directory, with both checks
  applied to every file it yields;
* :func:`check_glob` refuses globs that cannot name anything below a
  directory.

Whatever fails a check raises :class:`UnsafePathError` naming it, or, when
listing, is skipped with a warning naming it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path


class UnsafePathError(ValueError):
    """A name from data would lead outside its directory; the message names it."""


def relative_parts(name: str, *, what: str = "name") -> list[str]:
    """The segments of ``name``, a canonical ``/``-separated relative path.

    :raises UnsafePathError: naming ``name`` (described as ``what``) if it
        is empty, absolute, holds a NUL, an empty, ``.`` or ``..`` segment,
        or text no file name can be made of.  Segments too long for a file
        name pass: the file system says so when one is used, as it does for
        pytest.
    """
    if not name:
        raise UnsafePathError(f"{what} {name!r} is empty")
    if "\0" in name:
        raise UnsafePathError(f"{what} {name!r} contains a NUL character")
    if name.startswith("/"):
        raise UnsafePathError(f"{what} {name!r} is an absolute path")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            segment = f"a {part!r} segment" if part else "an empty segment"
            raise UnsafePathError(
                f"{what} {name!r} has {segment}; only plain relative names are accepted"
            )
        try:
            os.fsencode(part)
        except UnicodeEncodeError:
            raise UnsafePathError(
                f"{what} {name!r} cannot be encoded as a file name"
            ) from None
    return parts


def confined(root: Path, name: str, *, under: str = "", follow: bool = True) -> Path:
    """The path ``root/under/name``, checked to stay inside ``root``.

    ``root`` is trusted (the configured cache directory); everything below
    it is data.  ``name`` must pass :func:`relative_parts`, and no symbolic
    link between ``root`` and the path may resolve outside ``root``: not
    ``under`` itself, no directory on the way, and the path itself when
    ``follow`` is true.  Pass ``follow=False`` for operations on the entry
    itself (unlinking it, replacing it), which never follow it.

    Costs one ``lstat`` per segment below ``root``; the links found are
    resolved, nothing else is.

    :raises UnsafePathError: naming ``name`` and the link that leads out.
    """
    parts = [*(under.split("/") if under else ()), *relative_parts(name)]
    # Strings, not Path objects, while walking: this runs for every value
    # read or written, and joining Paths costs more than the lstat calls.
    path = os.fspath(root)
    real_root: str | None = None
    checked = parts if follow else parts[:-1]
    for part in checked:
        path = f"{path}/{part}"
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            # Nothing exists from here on (or it cannot be looked at, and the
            # operation will fail on its own): there is no link to follow.
            break
        if stat.S_ISLNK(mode):
            if real_root is None:
                real_root = os.path.realpath(root)
            target = os.path.realpath(path)
            if not _within(target, real_root):
                raise UnsafePathError(
                    f"{_short(name)} leads outside {root}: {path} is a symbolic "
                    f"link to {target}"
                )
        elif not stat.S_ISDIR(mode):
            break
    return root.joinpath(*parts)


def check_glob(glob: str) -> str:
    """Return ``glob`` if it can match names below a directory.

    :raises UnsafePathError: naming the glob if it is empty, absolute or
        holds a NUL.  ``..`` segments are allowed: what they match is
        confined like every other match.
    """
    if not glob:
        raise UnsafePathError("glob '' is empty; use '*' for everything")
    if "\0" in glob:
        raise UnsafePathError(f"glob {glob!r} contains a NUL character")
    if glob.startswith("/"):
        raise UnsafePathError(
            f"glob {glob!r} is absolute; globs match names below the cache, "
            "such as 'cache/*'"
        )
    return glob


Warn = Callable[[str], None]


def files_below(
    root: Path, under: str, glob: str = "*", *, warn: Warn | None = None
) -> Iterator[str]:
    """The regular files below ``root/under`` whose names match ``glob``.

    Yields names relative to ``root/under``, ``/``-separated, in no
    particular order.  ``glob`` has the meaning of
    :meth:`pathlib.Path.rglob`; matches that ``..`` segments lead out of
    ``root/under`` are dropped, as pytest drops them.

    Directories are walked without following symbolic links.  A link to a
    file inside ``root`` is listed like the file (pytest's provider lists
    it too); a link to a directory is not entered; a link leading outside
    ``root``, and ``root/under`` being such a link, are skipped with a
    warning naming them (``warn``, default :func:`warn_cache`).

    :raises UnsafePathError: if ``glob`` fails :func:`check_glob`.
    """
    check_glob(glob)
    if warn is None:
        from pytest_crosscache._warnings import warn_cache

        warn = warn_cache
    try:
        top = confined(root, under) if under else root
    except UnsafePathError as exc:
        warn(f"skipping {under}/: {exc}")
        return
    matches = _matcher(top, glob)
    resolved_root: list[str] = []
    stack = [("", top)]
    while stack:
        prefix, directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            name = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((name + "/", Path(entry.path)))
                    continue
                if entry.is_symlink():
                    if not resolved_root:
                        resolved_root.append(os.path.realpath(root))
                    target = os.path.realpath(entry.path)
                    if not _within(target, resolved_root[0]):
                        shown = f"{under}/{name}" if under else name
                        warn(
                            f"skipping {shown}: it is a symbolic link to {target}, "
                            f"outside {root}"
                        )
                        continue
                    if not os.path.isfile(target):
                        continue  # a link to a directory inside: not entered
                elif not entry.is_file(follow_symlinks=False):
                    shown = f"{under}/{name}" if under else name
                    warn(f"skipping {shown}: it is not a regular file")
                    continue
            except OSError:
                continue
            if matches(name):
                yield name


def _matcher(top: Path, glob: str) -> Callable[[str], bool]:
    """A test of relative names with the meaning of ``top.rglob(glob)``."""
    segments = glob.split("/")
    if ".." not in segments and segments[-1] not in ("", "**"):
        return lambda name: rglob_match(name, glob)
    # A glob that climbs matches what its path normalises to, and one that
    # ends in "**" or "/" matches what this Python's pathlib says it does:
    # let pathlib walk it once and keep the files that land below ``top``.
    # The listing still does the containment checks on what it yields.
    found: set[str] = set()
    base = os.path.normpath(top)
    try:
        for path in top.rglob(glob):
            normal = os.path.normpath(path)
            if normal.startswith(base + os.sep):
                found.add(os.path.relpath(normal, base).replace(os.sep, "/"))
    except (OSError, ValueError, NotImplementedError):
        pass  # a pattern pathlib refuses matches nothing
    return found.__contains__


def rglob_match(key: str, pattern: str) -> bool:
    """Whether ``Path(values).rglob(pattern)`` would yield the value ``key``.

    ``rglob(p)`` is ``glob("**/" + p)``: the pattern's segments match the
    key's last segments, ``**`` any number of segments, and a ``*`` does
    not cross a ``/``.
    """
    pattern_parts = [part for part in pattern.split("/") if part not in ("", ".")]
    return _match_parts(["**", *pattern_parts], key.split("/"))


def _match_parts(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    from fnmatch import fnmatchcase

    # Dynamic programming over (pattern index, parts index).
    reach = {0}
    for segment in pattern:
        nxt: set[int] = set()
        for pos in reach:
            if segment == "**":
                nxt.update(range(pos, len(parts) + 1))
            elif pos < len(parts) and fnmatchcase(parts[pos], segment):
                nxt.add(pos + 1)
        reach = nxt
        if not reach:
            return False
    return len(parts) in reach


def _within(target: str, real_root: str) -> bool:
    return target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep)


def _short(name: str) -> str:
    """``name`` for a message: its repr, cut when very long."""
    text = repr(name)
    return text if len(text) <= 100 else text[:97] + "..."
