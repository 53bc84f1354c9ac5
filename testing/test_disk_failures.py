"""A cache that cannot be written warns and never changes a session's outcome.

Every scenario runs the same small project twice in a fresh interpreter:
once with a writable cache and once with a cache the kernel refuses to
write to, and compares the two.  The failures are real: a regular file in
the way, a read-only directory, a full file system, a file size limit.
Nothing of the file system is mocked.

Root ignores permission bits, and CI runs as root, so the inner pytest is
started through a small launcher that first takes away what would hide the
failure (the capabilities that bypass permission checks), or sets up the
failure in a way root cannot bypass (a tiny tmpfs in a private mount
namespace, ``RLIMIT_FSIZE``).  The launcher then ``exec``\\s pytest, so
the inner run is an ordinary pytest process.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# Exit status of the launcher when this machine cannot set up the failure.
UNAVAILABLE = 77

LAUNCHER = r'''
"""Set up a file system failure the kernel enforces, then exec pytest."""

import ctypes
import ctypes.util
import errno
import os
import resource
import signal
import sys

UNAVAILABLE = 77
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def unavailable(what):
    err = ctypes.get_errno()
    print(f"launcher: {what} unavailable: {os.strerror(err)}", file=sys.stderr)
    sys.exit(UNAVAILABLE)


def drop_dac_capabilities():
    # Removed from the bounding set, these capabilities are not granted
    # again when root execs pytest, so permission bits apply to it.
    PR_CAPBSET_DROP = 24
    CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            unavailable("dropping capabilities")


def mount_full_tmpfs(target, seed_cache):
    # A private mount namespace: the mount vanishes with this process and
    # is invisible to every other test.
    CLONE_NEWNS = 0x00020000
    MS_REC, MS_PRIVATE = 0x4000, 0x40000
    if libc.unshare(CLONE_NEWNS) != 0:
        unavailable("unshare(CLONE_NEWNS)")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        unavailable("making mounts private")
    options = b"size=64k,mode=0755"
    if libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", 0, options) != 0:
        unavailable("mounting tmpfs")
    if seed_cache:
        # A cache directory from an earlier session, made before the disk filled.
        cache = os.path.join(target, "cache")
        os.makedirs(os.path.join(cache, "v", "cache"))
        for name, text in (("README.md", "# cache\n"), (".gitignore", "*\n")):
            with open(os.path.join(cache, name), "w") as f:
                f.write(text)
    fd = os.open(os.path.join(target, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def limit_file_size():
    # The default action of SIGXFSZ kills the process; ignored, the write
    # fails with EFBIG instead, as it does for any program that ignores it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # Too small for any cache file, even .gitignore, but enough for the
    # 4-byte probe Python's tempfile module writes at start-up.
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))


def main():
    mode, *args = sys.argv[1:]
    if mode == "dropdac":
        drop_dac_capabilities()
    elif mode.startswith("tmpfs:"):
        mount_full_tmpfs(mode.split(":", 1)[1], seed_cache=False)
    elif mode.startswith("seeded-tmpfs:"):
        mount_full_tmpfs(mode.split(":", 1)[1], seed_cache=True)
    elif mode == "fsize":
        limit_file_size()
    elif mode != "plain":
        raise SystemExit(f"launcher: unknown mode {mode!r}")
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *args])


main()
'''

PROJECT = """
    def test_passes():
        pass

    def test_fails():
        assert False

    def test_uses_cache(cache):
        cache.set("project/value", [1, 2, 3])
        assert cache.get("project/missing", "default") == "default"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_project=textwrap.dedent(PROJECT))
    return pytester


def run_inner(pytester: pytest.Pytester, mode: str, *args: str) -> pytest.RunResult:
    """Run pytest in ``pytester.path`` through the launcher in ``mode``.

    Output goes through pipes, not files, so that a file size limit only
    hits the files pytest writes itself.
    """
    launcher = pytester.path / "launcher.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(launcher), mode, *args],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode == UNAVAILABLE:
        pytest.skip(f"this machine cannot set up the failure: {proc.stderr.strip()}")
    return pytest.RunResult(
        proc.returncode,
        proc.stdout.splitlines(),
        proc.stderr.splitlines(),
        time.monotonic() - start,
    )


def assert_same_session(broken: pytest.RunResult, writable: pytest.RunResult) -> None:
    """The unwritable cache changed nothing but the warnings."""
    output = "\n".join(
        ["broken:", *broken.outlines, *broken.errlines, "writable:", *writable.outlines]
    )
    assert broken.ret == writable.ret == pytest.ExitCode.TESTS_FAILED, output
    expected = writable.parseoutcomes()
    expected.pop("warnings", None)
    assert expected == {"passed": 2, "failed": 1}
    got = broken.parseoutcomes()
    assert got.pop("warnings", 0) >= 1, output
    assert got == expected, output
    broken.stdout.fnmatch_lines(["*FAILED test_project.py::test_fails*"])
    assert "INTERNALERROR" not in "\n".join(broken.outlines + broken.errlines)
    assert "PytestCacheWarning" not in writable.stdout.str()


def assert_cache_warning(result: pytest.RunResult, path: Path) -> None:
    """The warnings summary has a PytestCacheWarning that names ``path``."""
    lines = result.outlines
    starts = [i for i, line in enumerate(lines) if "warnings summary" in line]
    assert starts, result.stdout.str()
    summary = "\n".join(lines[starts[0] :])
    warnings = [line for line in summary.splitlines() if "PytestCacheWarning" in line]
    assert warnings, result.stdout.str()
    assert any(str(path) in line for line in warnings), "\n".join(warnings)
    # Warnings name the values a user knows of, never the lock files,
    # temporary files or staging directories behind them.
    for hidden in (".locks", ".crosscache-new", ".crosscache-tmp"):
        assert not any(hidden in line for line in warnings), "\n".join(warnings)


def assert_absent_or_complete(cache: Path) -> None:
    """A cache dir a failed session leaves must not lack its supporting files.

    Later sessions never add them to an existing directory, so a bare one
    would stay without ``.gitignore`` (and end up in version control).
    """
    if cache.exists():
        present = sorted(p.name for p in cache.iterdir())
        assert {"README.md", ".gitignore", "CACHEDIR.TAG"} <= set(present), present
        gitignore = (cache / ".gitignore").read_text(encoding="utf-8")
        assert "*" in gitignore.splitlines()


def privilege_mode() -> str:
    """Root runs with permission checks enforced, like any other user."""
    return "dropdac" if os.geteuid() == 0 else "plain"


def test_cache_dir_is_a_regular_file(project: pytest.Pytester) -> None:
    writable = run_inner(project, "plain", "-o", "cache_dir=good-cache")
    blocker = project.path / "blocked-cache"
    blocker.write_text("I am a file, not a directory\n", encoding="utf-8")

    broken = run_inner(project, "plain", "-o", "cache_dir=blocked-cache")

    assert_same_session(broken, writable)
    assert_cache_warning(broken, blocker)
    assert blocker.read_text(encoding="utf-8") == "I am a file, not a directory\n"
    assert [p.name for p in project.path.iterdir() if "crosscache" in p.name] == []


def _make_read_only(top: Path) -> None:
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)


def _make_writable(top: Path) -> None:
    for dirpath, dirnames, _ in os.walk(top):
        os.chmod(dirpath, 0o755)
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)


@pytest.mark.parametrize("existing", [True, False], ids=["existing-cache", "new-cache"])
def test_cache_dir_not_writable(project: pytest.Pytester, existing: bool) -> None:
    """A read-only cache from an earlier run, or a read-only place for a new one."""
    mode = privilege_mode()
    writable = run_inner(project, mode, "-o", "cache_dir=good-cache")
    if existing:
        # The cache an earlier session left, then made read-only.
        first = run_inner(project, mode, "-o", "cache_dir=ro/cache")
        assert first.ret == writable.ret
        read_only = project.path / "ro" / "cache"
        assert (read_only / "v" / "cache" / "lastfailed").is_file()
        before = (read_only / "v" / "cache" / "lastfailed").read_bytes()
    else:
        (project.path / "ro").mkdir()
        read_only = project.path / "ro"
    _make_read_only(project.path / "ro")
    try:
        broken = run_inner(project, mode, "-o", "cache_dir=ro/cache")
    finally:
        _make_writable(project.path / "ro")

    assert_same_session(broken, writable)
    assert_cache_warning(broken, read_only)
    if existing:
        assert (read_only / "v" / "cache" / "lastfailed").read_bytes() == before
    else:
        assert list((project.path / "ro").iterdir()) == []
    assert_absent_or_complete(project.path / "good-cache")


@pytest.mark.parametrize("seeded", [False, True], ids=["new-cache", "existing-cache"])
def test_disk_full(project: pytest.Pytester, seeded: bool) -> None:
    """ENOSPC from a full tmpfs, mounted in a private mount namespace."""
    disk = project.path / "disk"
    disk.mkdir()
    writable = run_inner(project, "plain", "-o", "cache_dir=good-cache")
    mode = f"{'seeded-tmpfs' if seeded else 'tmpfs'}:{disk}"

    broken = run_inner(project, mode, "-o", "cache_dir=disk/cache")

    assert_same_session(broken, writable)
    assert_cache_warning(broken, disk / "cache")
    assert "No space left on device" in broken.stdout.str()
    assert_absent_or_complete(project.path / "good-cache")
    # The mount lived only as long as the inner session.
    assert list(disk.iterdir()) == []


def test_file_size_limit(project: pytest.Pytester) -> None:
    """EFBIG from ``RLIMIT_FSIZE``: needs no privilege, so it runs everywhere.

    ``-s`` because output capturing writes to temporary files, which the
    limit would break before the session starts.
    """
    writable = run_inner(project, "plain", "-s", "-o", "cache_dir=good-cache")

    broken = run_inner(project, "fsize", "-s", "-o", "cache_dir=limited-cache")

    assert_same_session(broken, writable)
    cache = project.path / "limited-cache"
    assert_cache_warning(broken, cache)
    assert "File too large" in broken.stdout.str()
    assert_absent_or_complete(cache)
    assert [p.name for p in project.path.iterdir() if "crosscache" in p.name] == []


def test_launcher_really_enforces_permissions(pytester: pytest.Pytester) -> None:
    """Against a vacuous pass: under the launcher even root cannot write here."""
    locked = pytester.path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    pytester.makepyfile(
        test_probe=f"""
        import pytest
        def test_probe():
            with pytest.raises(PermissionError):
                open({str(locked / "x")!r}, "w")
        """
    )
    try:
        result = run_inner(pytester, privilege_mode())
    finally:
        locked.chmod(0o755)
    result.assert_outcomes(passed=1)
    assert stat.S_IMODE(locked.stat().st_mode) == 0o755
