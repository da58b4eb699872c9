"""Headless Chromium driven over the Chrome DevTools Protocol, for tests and
benchmarks of the pages the gateway serves.

Debian's `chromium` (scripts/setup-host.sh `--with-browser`) speaks CDP on
a pipe (`--remote-debugging-pipe`: it reads commands on its file 3 and
writes answers and events on its file 4, each a JSON text ended by a NUL),
so nothing else is installed: no chromedriver, no WebDriver client, no
WebSocket, no port. One page target, attached with a flat session.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
    "--window-size=1024,768",
)


class BrowserError(Exception):
    """CDP answered an error, or the browser went away."""


class Chromium:
    """One headless browser with one page."""

    def __init__(self, executable: str, profile: str) -> None:
        commands_r, commands_w = os.pipe()
        answers_r, answers_w = os.pipe()
        # Above 4, so that placing one at 3 or 4 cannot overwrite the other.
        commands_r, answers_w = (_above_four(fd) for fd in (commands_r, answers_w))
        # Its files 3 and 4 must be these pipes' ends: bash places them (dash
        # takes no file number above 9).
        script = f'exec "$0" "$@" 3<&{commands_r} 4>&{answers_w}'
        self._process = subprocess.Popen(
            ["bash", "-c", script, executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(commands_r, answers_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_r)
        os.close(answers_w)
        self._out = os.fdopen(commands_w, "wb", buffering=0)
        self._in = os.fdopen(answers_r, "rb", buffering=0)
        self._next = 0
        self._answers: dict[int, dict[str, Any]] = {}
        self._ready = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        attached = self.call("Target.attachToTarget", targetId=target, flatten=True)
        self._session = attached["sessionId"]
        self.page("Page.enable")
        self.page("Runtime.enable")

    def call(self, method: str, *, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait (30 s at most) for its answer."""
        with self._ready:
            self._next += 1
            number = self._next
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        with self._ready:
            while number not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise BrowserError(f"no answer to {method}")
                self._ready.wait(left)
            answer = self._answers.pop(number)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        """A command to the page."""
        return self.call(method, session=self._session, **params)

    def navigate(self, url: str) -> None:
        """Open `url` in the page."""
        self.page("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """The first truthy value of `expression`, polled every 20 ms."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(BrowserError):  # the page may be loading
                value = self.evaluate(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} stayed false for {timeout} s")
            time.sleep(0.02)

    def screenshot(self) -> bytes:
        """A PNG of the page as it shows now."""
        return base64.b64decode(self.page("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.call("Browser.close")
        with contextlib.suppress(OSError):
            self._out.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _read(self) -> None:
        buffered = b""
        while chunk := self._in.read(1 << 16):
            buffered += chunk
            *messages, buffered = buffered.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._ready:
                        self._answers[message["id"]] = message
                        self._ready.notify_all()
        with self._ready:
            self._ready.notify_all()


def _above_four(fd: int) -> int:
    """`fd` moved to a number of 5 or more."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 5)
    os.close(fd)
    return moved


@contextlib.contextmanager
def chromium() -> Iterator[Chromium]:
    """A headless Chromium with a throwaway profile, closed after."""
    executable = shutil.which("chromium")
    if executable is None:
        raise BrowserError("chromium is installed by scripts/setup-host.sh --with-browser")
    with tempfile.TemporaryDirectory(prefix="sfmesh-chromium-") as profile:
        browser = Chromium(executable, profile)
        try:
            yield browser
        finally:
            browser.close()
