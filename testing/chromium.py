"""Headless Chromium driven over the DevTools protocol, for the report's browser tests.

No websocket and no port: Chromium's ``--remote-debugging-pipe`` reads
commands from file descriptor 3 and writes replies and events to file
descriptor 4, as JSON messages ended by a NUL byte.  A few dozen lines
of this module are the whole client.

Under CI (the ``CI`` environment variable set) a missing browser fails
the tests instead of skipping them, so the report is never silently left
untested there.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

#: Flags that keep a headless browser from reaching out to anything.
QUIET_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in CI containers cannot use the setuid sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--hide-scrollbars",
    "--mute-audio",
)

# Replaces itself with the browser after moving the pipe's ends to the
# descriptors Chromium expects (subprocess cannot renumber descriptors).
_EXEC = (
    "import os, sys\n"
    "os.dup2(int(sys.argv[1]), 3)\n"
    "os.dup2(int(sys.argv[2]), 4)\n"
    "os.close(int(sys.argv[1]))\n"
    "os.close(int(sys.argv[2]))\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


def find_chromium() -> str | None:
    """The browser binary: ``$CHROMIUM``, else ``chromium`` or ``chromium-browser`` on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


def require_chromium() -> str:
    """The browser binary; skip (fail under CI) when there is none."""
    binary = find_chromium()
    if binary is None:
        message = "the report's browser tests need Chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must provide it", pytrace=False)
        pytest.skip(message)
    return binary


def _high(fd: int) -> int:
    # Above 9, so neither end can collide with descriptors 3 and 4 in the child.
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


@attrs.define
class PageLoad:
    """What happened while a page loaded."""

    #: URLs the page asked for, the document itself included.
    requests: list[str] = attrs.Factory(list)
    #: Console messages and uncaught exceptions: ``(level, text)``.
    console: list[tuple[str, str]] = attrs.Factory(list)
    #: Seconds from navigation to the ``load`` event.
    load_seconds: float = 0.0

    @property
    def errors(self) -> list[str]:
        return [text for level, text in self.console if level in ("error", "assert")]


class Chromium:
    """One headless browser with one page, controlled through a pipe."""

    def __init__(
        self,
        binary: str,
        profile: Path,
        width: int = 1366,
        height: int = 900,
        *,
        remove_profile: bool = False,
    ) -> None:
        self._profile = profile if remove_profile else None
        to_read, to_write = (_high(fd) for fd in os.pipe())
        from_read, from_write = (_high(fd) for fd in os.pipe())
        args = [
            *QUIET_FLAGS,
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            [sys.executable, "-c", _EXEC, str(to_read), str(from_write), binary, *args],
            pass_fds=(to_read, from_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_read)
        os.close(from_write)
        self._out = os.fdopen(to_write, "wb", buffering=0)
        self._in = os.fdopen(from_read, "rb", buffering=0)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call(
            "Target.attachToTarget", targetId=target, flatten=True
        )["sessionId"]
        self.width, self.height = width, height
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    # -- the protocol ---------------------------------------------------

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = self._in.read(1 << 16)
            if not chunk:
                raise EOFError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    def call(self, method: str, session: bool = False, **params: Any) -> Any:
        """Send one command and return its result; events meanwhile go to :attr:`events`."""
        self._next_id += 1
        message: dict[str, Any] = {
            "id": self._next_id,
            "method": method,
            "params": params,
        }
        if session:
            message["sessionId"] = self._session
        self._out.write(json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {timeout} s")
            self.events.append(self._receive())

    # -- what the tests use ---------------------------------------------

    def load(self, path: Path, timeout: float = 60.0) -> PageLoad:
        """Open ``path`` and wait for its ``load`` event."""
        self.events.clear()
        start = time.perf_counter()
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self._wait_for("Page.loadEventFired", timeout)
        seconds = time.perf_counter() - start
        # One round trip more: late console messages and requests arrive first.
        self.evaluate("1")
        result = PageLoad(load_seconds=seconds)
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                result.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled":
                text = " ".join(
                    str(arg.get("value", arg.get("description", "")))
                    for arg in params.get("args", [])
                )
                result.console.append((params.get("type", ""), text))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get(
                    "text", ""
                )
                result.console.append(("error", text))
            elif method == "Log.entryAdded":
                entry = params["entry"]
                result.console.append((entry.get("level", ""), entry.get("text", "")))
        return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(
        self, path: Path, top: float = 0.0, height: float | None = None
    ) -> None:
        """Save a PNG of the page from ``top``, ``height`` pixels (default: to the end)."""
        if height is None:
            height = self.evaluate("document.documentElement.scrollHeight") - top
        params: dict[str, Any] = {
            "format": "png",
            "clip": {
                "x": 0,
                "y": top,
                "width": self.width,
                "height": height,
                "scale": 1,
            },
            "captureBeyondViewport": True,
        }
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        path.write_bytes(base64.b64decode(data))

    def set_color_scheme(self, scheme: str) -> None:
        """Emulate ``prefers-color-scheme: light`` or ``dark``."""
        self.call(
            "Emulation.setEmulatedMedia",
            session=True,
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )

    def close(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            self.call("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._out.close()
        self._in.close()
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start(binary: str, width: int = 1366, height: int = 900) -> Chromium:
    """A browser with a throw-away profile, removed when it is closed."""
    profile = Path(tempfile.mkdtemp(prefix="crosscache-chromium-"))
    return Chromium(binary, profile, width, height, remove_profile=True)
