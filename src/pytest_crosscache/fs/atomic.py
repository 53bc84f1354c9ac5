"""Atomic replacement of files: readers see the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: Suffix of in-progress writes.  Readers and listings skip such files, so a
#: writer killed mid-write leaves nothing that is ever read as a value.
TEMP_SUFFIX = ".crosscache-tmp"

# Room for the key's name in a temporary name: 255 bytes less two dots,
# a pid of up to 10 digits, a dash, 8 hex digits and the suffix.
_STEM_BYTES = 255 - 2 - 10 - 1 - 8 - len(TEMP_SUFFIX)


def is_temporary(name: str) -> bool:
    """Tell whether a file name belongs to an in-progress (or abandoned) write."""
    return name.endswith(TEMP_SUFFIX)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader ever sees a partial file.

    The bytes go to a temporary file in the same directory (so the final
    rename never crosses a file system) and ``os.replace`` moves it into
    place.  The temporary file is created with mode 0o666 filtered by the
    umask, like a plain ``open(path, "w")`` would, so the permissions of
    the result do not depend on how it was written.
    """
    # Keep the temporary name within the 255-byte limit on file names even
    # when the key's own name uses all of it.
    stem = os.fsencode(path.name)[:_STEM_BYTES].decode("utf-8", "ignore")
    tmp = path.with_name(f".{stem}.{os.getpid()}-{os.urandom(4).hex()}{TEMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
