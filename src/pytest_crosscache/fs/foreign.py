"""Reading a directory tree someone else made: regular files only, and bounded.

A cache directory downloaded as a CI artifact holds whatever the job that
made it left there: symbolic links to ``/etc/shadow`` or
``/proc/self/environ``, FIFOs that block whoever opens them, devices,
sparse files of a terabyte.  :func:`regular_files` walks such a tree
without following a single link and reports everything that is not a
regular file; :func:`open_regular` opens one of the files it listed
through the same directories, refusing links at every step
(``O_NOFOLLOW``), never blocking (``O_NONBLOCK``) and checking it is still
the regular file listed; :func:`copy_bounded` copies at most a given number
of bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Deeper trees are not entered: no cache needs them, and each level costs
#: a descriptor while it is walked.
MAX_DEPTH = 64

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20


class ForeignFileError(OSError):
    """A file of a foreign tree cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class ForeignFile:
    """A regular file found in a foreign tree."""

    #: ``/``-separated, relative to the tree's top.
    name: str
    size: int
    mtime_ns: int
    #: (device, inode): what :func:`open_regular` must find again.
    identity: tuple[int, int]

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


def regular_files(top: Path, report: Callable[[str], None]) -> Iterator[ForeignFile]:
    """The regular files below ``top``, walked without following any link.

    Everything else is reported (``report`` gets a message naming it) and
    skipped: symbolic links, FIFOs, sockets, devices, ``top`` itself being
    a link, directories deeper than :data:`MAX_DEPTH`, directories that
    cannot be read.  A missing ``top`` holds nothing.
    """
    try:
        top_fd = os.open(top, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError as exc:
        report(f"skipped {top}: {_why_not_a_directory(top, exc)}")
        return
    try:
        pending: list[tuple[str, ...]] = [()]
        while pending:
            parts = pending.pop()
            shown = top.joinpath(*parts)
            try:
                fd = _open_dir(top_fd, parts)
            except OSError as exc:
                report(f"skipped {shown}: {_why_not_a_directory(shown, exc)}")
                continue
            try:
                entries = _listing(fd)
            except OSError as exc:
                report(f"skipped {shown}: cannot list it ({exc.strerror})")
                continue
            finally:
                os.close(fd)
            for name, info in entries:
                path = shown / name
                mode = info.st_mode
                if stat.S_ISDIR(mode):
                    if len(parts) + 1 >= MAX_DEPTH:
                        report(f"skipped {path}: nested deeper than {MAX_DEPTH} levels")
                    else:
                        pending.append((*parts, name))
                elif stat.S_ISREG(mode):
                    yield ForeignFile(
                        "/".join((*parts, name)),
                        info.st_size,
                        info.st_mtime_ns,
                        (info.st_dev, info.st_ino),
                    )
                else:
                    report(f"skipped {path}: {_kind(mode, path)}, not a regular file")
    finally:
        os.close(top_fd)


def open_regular(top: Path, file: ForeignFile) -> int:
    """A read-only descriptor of ``file``, found again below ``top``.

    :raises ForeignFileError: if a link stands anywhere on the way, or the
        file is no longer the regular file :func:`regular_files` listed.
    """
    parts = file.name.split("/")
    path = top.joinpath(*parts)
    try:
        top_fd = os.open(top, _DIR_FLAGS)
        try:
            parent = _open_dir(top_fd, tuple(parts[:-1]))
        finally:
            os.close(top_fd)
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)
        finally:
            os.close(parent)
    except OSError as exc:
        raise ForeignFileError(f"cannot open {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) != file.identity:
        os.close(fd)
        raise ForeignFileError(f"{path} changed while it was being merged")
    return fd


def copy_bounded(source: int, dest: int, limit: int, name: str) -> int:
    """Copy what ``source`` holds to ``dest``, at most ``limit`` bytes.

    :raises ForeignFileError: naming ``name`` if there is more than that
        (a file that grew after it was listed) or it cannot be read; errors
        writing ``dest`` are raised as they are.
    """
    copied = 0
    for chunk in _chunks(source, limit, name):
        copied += len(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(dest, view) :]
    return copied


def read_bounded(top: Path, file: ForeignFile, limit: int) -> bytes:
    """The content of ``file`` (see :func:`open_regular`), at most ``limit`` bytes.

    :raises ForeignFileError: as :func:`open_regular`, or if it holds more.
    """
    fd = open_regular(top, file)
    try:
        return _read_fd(fd, limit, top / file.name)
    finally:
        os.close(fd)


def read_regular(path: Path, limit: int) -> bytes:
    """The content of the regular file ``path``, at most ``limit`` bytes.

    For single files that others may have planted (a journal): the last
    component is not followed, a FIFO or device is not waited on.

    :raises FileNotFoundError: if there is nothing at ``path``.
    :raises ForeignFileError: naming ``path`` if it is a link, no regular
        file, larger than ``limit`` or unreadable.
    """
    try:
        fd = os.open(path, _FILE_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ForeignFileError(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ForeignFileError(f"{path} is {_kind(info.st_mode, path)}")
        return _read_fd(fd, limit, path)
    finally:
        os.close(fd)


def _read_fd(fd: int, limit: int, path: Path) -> bytes:
    return b"".join(_chunks(fd, limit, str(path)))


def _chunks(fd: int, limit: int, name: str) -> Iterator[bytes]:
    """What ``fd`` holds, in chunks, at most ``limit`` bytes in all.

    :raises ForeignFileError: naming ``name`` if there is more, or if it
        cannot be read.
    """
    size = 0
    while True:
        try:
            chunk = os.read(fd, min(_CHUNK, limit - size + 1))
        except OSError as exc:
            # The source's fault, not the destination's: only this file is lost.
            raise ForeignFileError(f"cannot read {name}: {exc.strerror}") from None
        if not chunk:
            return
        size += len(chunk)
        if size > limit:
            raise ForeignFileError(f"{name} is larger than {limit} bytes")
        yield chunk


def _listing(fd: int) -> list[tuple[str, os.stat_result]]:
    """The entries of the directory ``fd`` with their own (not followed) status.

    Entries of a listing by descriptor look themselves up through that
    descriptor, so this is done before the caller closes it.
    """
    found = []
    with os.scandir(fd) as listing:
        for entry in listing:
            try:
                found.append((entry.name, entry.stat(follow_symlinks=False)))
            except OSError:
                continue  # gone meanwhile
    found.sort(key=lambda item: item[0])
    return found


def _open_dir(top_fd: int, parts: tuple[str, ...]) -> int:
    """A descriptor of the directory ``parts`` below ``top_fd``; no links followed."""
    fd = os.dup(top_fd)
    for part in parts:
        try:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def _why_not_a_directory(path: Path, exc: OSError) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return f"cannot open it ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return f"cannot open it ({exc.strerror})"
    return f"{_kind(mode, path)}, not a directory"


def _kind(mode: int, path: Path) -> str:
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a special file"
