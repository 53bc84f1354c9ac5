"""``crosscache merge`` of shards that hold more than data.

A shard is whatever the CI job that made it left: links to secrets, FIFOs
that block whoever opens them, devices, sockets, huge sparse files, a key
that is a file in one shard and a directory in another.  The merge copies
regular files only, plants no link, never hangs, and a merge that fails
part-way leaves the destination as it was.  Every test runs the real
command as a subprocess (with a timeout, so a hang fails instead of
blocking the suite), on real files, links and FIFOs.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_crosscache import Cache
from pytest_crosscache._keys import LASTFAILED_KEY
from pytest_crosscache._keys import NODEIDS_KEY
from pytest_crosscache.fs.atomic import TEMP_SUFFIX

#: Stands for a secret elsewhere on the machine: its content must never
#: appear in the merged cache.
SECRET = "SECRET-CONTENT-7f3a"


def merge(
    cwd: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_crosscache", "merge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def shard(base: Path, name: str, failures: dict[str, bool]) -> Path:
    cache = Cache(base / name)
    cache.set(LASTFAILED_KEY, failures)
    cache.set(NODEIDS_KEY, sorted(failures))
    return cache.cachedir


def tree(root: Path) -> dict[str, str]:
    """Every entry below ``root``: relative path -> kind (and content of files)."""
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top, name)
            rel = path.relative_to(root).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                found[rel] = "link"
            elif stat.S_ISDIR(mode):
                found[rel] = "dir"
            elif stat.S_ISREG(mode):
                found[rel] = "file:" + path.read_bytes().decode("utf-8", "replace")
            else:
                found[rel] = "special"
    return found


def assert_only_data(dest: Path) -> None:
    """No link, no special file, no secret, no temporary file in the merged cache."""
    for rel, kind in tree(dest).items():
        assert kind in ("dir",) or kind.startswith("file:"), (rel, kind)
        assert SECRET not in kind, rel
        assert not rel.endswith(TEMP_SUFFIX), rel


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(json.dumps({"stolen": SECRET}))
    secret_dir = tmp_path / "secret-dir"
    secret_dir.mkdir()
    (secret_dir / "inner").write_text(json.dumps(SECRET))
    return path


LINK_TARGETS = [
    "secret",
    "secret-dir",
    "/etc/shadow",
    "/proc/self/environ",
    "/dev/zero",
    "dangling",
]


@pytest.mark.parametrize(
    "where", ["v/app/stolen", "v/cache/lastfailed", "d/plugin/stolen"]
)
@pytest.mark.parametrize("target", LINK_TARGETS)
def test_links_are_not_followed(
    tmp_path: Path, secret: Path, where: str, target: str
) -> None:
    good = shard(tmp_path, "good", {"t.py::a": True})
    bad = shard(tmp_path, "bad", {"t.py::b": True})
    link = bad / where
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists():
        link.unlink()
    resolved = {
        "secret": secret,
        "secret-dir": tmp_path / "secret-dir",
        "dangling": tmp_path / "nowhere",
    }.get(target, Path(target))
    link.symlink_to(resolved)
    done = merge(tmp_path, "--into", "dest", str(good), str(bad))
    assert done.returncode == 0, done.stderr
    assert f"skipped {link}: a symbolic link to {resolved}" in done.stderr
    assert_only_data(tmp_path / "dest")
    lastfailed = Cache(tmp_path / "dest").get(LASTFAILED_KEY, None)
    assert "t.py::a" in lastfailed
    # The bad shard's own lastfailed counts unless it is the link.
    assert ("t.py::b" in lastfailed) == (where != "v/cache/lastfailed")


@pytest.mark.parametrize("top", ["v", "d"])
def test_a_linked_values_or_dirs_tree(tmp_path: Path, secret: Path, top: str) -> None:
    good = shard(tmp_path, "good", {"t.py::a": True})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / top).symlink_to(tmp_path / "secret-dir")
    done = merge(tmp_path, "--into", "dest", str(good), str(bad))
    assert done.returncode == 0, done.stderr
    assert f"skipped {bad / top}: a symbolic link to" in done.stderr
    assert_only_data(tmp_path / "dest")


def test_linked_directory_inside_a_tree(tmp_path: Path, secret: Path) -> None:
    bad = shard(tmp_path, "bad", {"t.py::b": True})
    (bad / "v" / "app").mkdir()
    (bad / "v" / "app" / "sub").symlink_to(tmp_path / "secret-dir")
    (bad / "d").mkdir()
    (bad / "d" / "plugin").symlink_to(tmp_path / "secret-dir")
    done = merge(tmp_path, "--into", "dest", str(bad))
    assert done.returncode == 0, done.stderr
    assert "v/app/sub: a symbolic link" in done.stderr
    assert "d/plugin: a symbolic link" in done.stderr
    assert_only_data(tmp_path / "dest")
    assert Cache(tmp_path / "dest").get(LASTFAILED_KEY, None) == {"t.py::b": True}


@pytest.mark.parametrize("where", ["v/app/fifo", "v/cache/lastfailed", "d/plugin/fifo"])
def test_fifos_never_block(tmp_path: Path, where: str) -> None:
    good = shard(tmp_path, "good", {"t.py::a": True})
    bad = shard(tmp_path, "bad", {"t.py::b": True})
    fifo = bad / where
    fifo.parent.mkdir(parents=True, exist_ok=True)
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    # Nobody ever writes to the FIFO: opening it for reading would block.
    done = merge(tmp_path, "--into", "dest", str(good), str(bad), timeout=30)
    assert done.returncode == 0, done.stderr
    assert f"skipped {fifo}: a FIFO, not a regular file" in done.stderr
    assert_only_data(tmp_path / "dest")
    assert "t.py::a" in Cache(tmp_path / "dest").get(LASTFAILED_KEY, None)


def test_sockets_and_devices(tmp_path: Path) -> None:
    bad = shard(tmp_path, "bad", {"t.py::b": True})
    (bad / "d" / "plugin").mkdir(parents=True)
    # Short relative path: Unix socket paths are limited to ~100 bytes.
    sock = socket.socket(socket.AF_UNIX)
    os.chdir(bad / "v")
    try:
        sock.bind("sock")
    finally:
        os.chdir(tmp_path)
    device = bad / "d" / "plugin" / "zero"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        device = None  # not root: the socket case still runs
    try:
        done = merge(tmp_path, "--into", "dest", str(bad))
    finally:
        sock.close()
    assert done.returncode == 0, done.stderr
    assert f"skipped {bad / 'v' / 'sock'}: a socket" in done.stderr
    if device is not None:
        assert f"skipped {device}: a device" in done.stderr
    assert_only_data(tmp_path / "dest")


def test_huge_sparse_files_are_not_read(tmp_path: Path) -> None:
    bad = shard(tmp_path, "bad", {"t.py::b": True})
    (bad / "d" / "plugin").mkdir(parents=True)
    huge = bad / "d" / "plugin" / "sparse.bin"
    with huge.open("wb") as f:
        f.truncate(64 << 30)  # 64 GiB of nothing
    big_value = bad / "v" / "app" / "big"
    big_value.parent.mkdir()
    big_value.write_text(json.dumps("x" * 5000))
    done = merge(tmp_path, "--into", "dest", "--max-size", "4KiB", str(bad))
    assert done.returncode == 0, done.stderr
    assert f"skipped {huge}: 64.0 GiB is more than the 4.0 KiB" in done.stderr
    assert f"skipped {big_value}: 4.9 KiB is more than" in done.stderr
    assert not (tmp_path / "dest" / "d" / "plugin" / "sparse.bin").exists()
    assert Cache(tmp_path / "dest").get(LASTFAILED_KEY, None) == {"t.py::b": True}


@pytest.mark.parametrize("size", ["0", "abc", "-1k", "1.5.2M"])
def test_bad_max_size(tmp_path: Path, size: str) -> None:
    bad = shard(tmp_path, "bad", {})
    done = merge(tmp_path, "--into", "dest", f"--max-size={size}", str(bad))
    if size == "0":
        assert done.returncode == 0  # nothing but empty files copied
        return
    assert done.returncode == 2
    assert f"invalid size {size!r}" in done.stderr


@pytest.mark.parametrize("order", ["file-first", "dir-first"])
def test_key_that_is_a_file_in_one_shard_and_a_directory_in_another(
    tmp_path: Path, order: str
) -> None:
    one = Cache(tmp_path / "one")
    two = Cache(tmp_path / "two")
    one.set("app/x", "a value")
    two.set("app/x/y", "below a directory")
    one.mkdir("plugin").joinpath("f").write_text("file")
    (two.mkdir("plugin") / "f").mkdir()
    (two.cachedir / "d" / "plugin" / "f" / "g").write_text("nested")
    two.set("app/other", "kept")
    sources = ["one", "two"] if order == "file-first" else ["two", "one"]
    done = merge(tmp_path, "--into", "dest", *sources)
    assert done.returncode == 0, done.stderr
    assert "v/app/x is a file in" in done.stderr
    assert "d/plugin/f is a file in" in done.stderr
    dest = Cache(tmp_path / "dest")
    assert dest.get("app/x", None) == "a value"
    assert dest.get("app/other", None) == "kept"
    assert_only_data(tmp_path / "dest")


def test_key_that_is_a_directory_in_the_destination(tmp_path: Path) -> None:
    dest = Cache(tmp_path / "dest")
    dest.set("app/x/y", "dest's")
    dest.set("app/z", "dest's file")
    src = Cache(tmp_path / "src")
    src.set("app/x", "a value")
    src.set("app/z/w", "below")
    src.set("app/fine", 1)
    done = merge(tmp_path, "--into", "dest", "src")
    assert done.returncode == 0, done.stderr
    assert "is a directory in the destination" in done.stderr
    assert "a file stands where the destination needs a directory" in done.stderr
    assert dest.get("app/x/y", None) == "dest's"
    assert dest.get("app/z", None) == "dest's file"
    assert dest.get("app/fine", None) == 1
    assert_only_data(tmp_path / "dest")


def test_destination_with_a_link_out(tmp_path: Path, secret: Path) -> None:
    dest = Cache(tmp_path / "dest")
    dest.set("app/keep", 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest.cachedir / "v" / "linked").symlink_to(outside)
    (dest.cachedir / "d").mkdir()
    (dest.cachedir / "d" / "plugin").symlink_to(outside)
    src = Cache(tmp_path / "src")
    src.set("linked/x", "would land outside")
    src.mkdir("plugin").joinpath("f").write_text("would land outside")
    done = merge(tmp_path, "--into", "dest", "src")
    assert done.returncode == 0, done.stderr
    assert "leads outside" in done.stderr
    assert list(outside.iterdir()) == []


LIMITED_MERGE = """
import resource, signal, sys
from pytest_crosscache.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(main(["merge", *sys.argv[2:]]))
"""


def limited_merge(cwd: Path) -> subprocess.CompletedProcess[str]:
    """``crosscache merge --into dest src`` where writing over 1 MiB fails."""
    return subprocess.run(
        [sys.executable, "-c", LIMITED_MERGE, str(1 << 20), "--into", "dest", "src"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_failure_while_staging_leaves_destination_as_it_was(tmp_path: Path) -> None:
    """A file that cannot be written (a file size limit) aborts the merge before
    anything in the destination changed, and leaves no temporary file."""
    dest = Cache(tmp_path / "dest")
    dest.set(LASTFAILED_KEY, {"t.py::dest": True})
    dest.set("app/v", "dest's")
    time.sleep(0.01)
    src = Cache(tmp_path / "src")
    src.set(LASTFAILED_KEY, {"t.py::src": True})
    src.set("app/v", "src's, newer")
    src.mkdir("plugin").joinpath("big.bin").write_bytes(b"x" * (2 << 20))
    before = tree(tmp_path / "dest")
    done = limited_merge(tmp_path)
    assert done.returncode == 1, done.stderr
    assert "could not merge into" in done.stderr
    assert "Traceback" not in done.stderr
    assert tree(tmp_path / "dest") == before


def test_failure_on_a_new_destination_leaves_nothing(tmp_path: Path) -> None:
    src = Cache(tmp_path / "src")
    src.set("app/v", 1)
    src.mkdir("plugin").joinpath("big.bin").write_bytes(b"x" * (2 << 20))
    done = limited_merge(tmp_path)
    assert done.returncode == 1, done.stderr
    assert not (tmp_path / "dest").exists()


def test_hostile_shard_then_pytest_runs_the_union(pytester: pytest.Pytester) -> None:
    """End to end: a merged cache with a hostile shard still drives --lf."""
    pytester.makepyfile(
        test_one="""
        def test_a(): assert 0
        def test_b(): pass
        """
    )
    pytester.runpytest("-o", "cache_dir=shard1").assert_outcomes(passed=1, failed=1)
    bad = shard(pytester.path, "shard2", {"test_one.py::test_b": True})
    (bad / "v" / "app").mkdir()
    os.mkfifo(bad / "v" / "app" / "fifo")
    (bad / "v" / "app" / "link").symlink_to("/etc/passwd")
    done = merge(pytester.path, "--into", ".pytest_cache", "shard1", "shard2")
    assert done.returncode == 0, done.stderr
    result = pytester.runpytest("--lf")
    result.assert_outcomes(failed=1, passed=1)
    assert_only_data(pytester.path / ".pytest_cache")


def test_tidy_removes_abandoned_temporaries_under_d(pytester: pytest.Pytester) -> None:
    cache = Cache(pytester.path / ".pytest_cache")
    plugin = cache.mkdir("plugin")
    leftover = plugin / f".123-abcd{TEMP_SUFFIX}"
    leftover.write_text("half a copy")
    fresh = plugin / f".456-ef01{TEMP_SUFFIX}"
    fresh.write_text("a copy in progress")
    old = time.time() - 3 * 3600
    os.utime(leftover, (old, old))
    (plugin / "data").write_text("kept")
    pytester.makepyfile("def test_ok(): pass")
    pytester.runpytest().assert_outcomes(passed=1)
    assert not leftover.exists()
    assert fresh.exists()  # may belong to a merge running now
    assert (plugin / "data").read_text() == "kept"
