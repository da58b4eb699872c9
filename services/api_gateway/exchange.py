"""One HTTP request/response exchange: the ASGI `receive` / `send` of a request.

`send` buffers `http.response.start` when it carries a Content-Length, so the
status line, headers and body leave in one write; without one the head goes
out at once and the body is chunked, each message written as it comes.
`receive` yields the body, then waits for the client to leave (or the response
to end) and answers `http.disconnect`; the time it spends waiting for body
bytes counts against the connection's body timeout. A response that starts
before the whole request body has arrived closes the connection after it.
When the app returns, one JSON line goes to the access log and the request
is counted (`access.py`).
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from services.api_gateway.access import finish
from services.api_gateway.types import AsgiMessage, Receive, Scope, Send

if TYPE_CHECKING:
    from services.api_gateway.http_server import HttpProtocol

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("sfmesh.api_gateway.http")

_BAD_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_COPY_LIMIT = 64 * 1024
_DISCONNECT: AsgiMessage = {"type": "http.disconnect"}


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


_STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <phrase>\r\n`."""
    return _STATUS_LINES.get(status) or _status_line(status)


_date = [0, b""]


def _date_line() -> bytes:
    """`date: …\r\n`, formatted once a second."""
    now = int(time.time())
    if now != _date[0]:
        _date[:] = [now, b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"]
    return _date[1]  # type: ignore[return-value]


def plain_response(status: int, message: bytes) -> bytes:
    """A whole `text/plain` response that closes the connection."""
    return b"".join(
        (
            _STATUS_LINES[status],
            _date_line(),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(message),
            message,
        )
    )


class Exchange:
    """One request on a connection and the response the app sends for it."""

    __slots__ = (
        "body", "body_wait", "checked_continue", "chunked", "complete", "conn", "delivered",
        "disconnected", "head_only", "keep_alive", "more_body", "pending", "remaining",
        "request_id", "scope", "started", "status", "waiter",
    )  # fmt: skip

    def __init__(self, conn: HttpProtocol, scope: Scope, keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.more_body = True
        self.delivered = False
        self.disconnected = False
        self.started = False
        self.complete = False
        self.head_only = scope["method"] == "HEAD"
        self.chunked = False
        self.remaining = 0
        self.pending: bytes | None = None
        self.status = 0
        self.request_id = ""
        self.waiter: asyncio.Future[None] | None = None
        self.checked_continue = False
        self.body_wait = conn.limits.body_timeout
        """Seconds `receive` may still wait for body bytes."""

    def wake(self) -> None:
        """Wake a pending `receive`."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def lost(self) -> None:
        """The connection is gone."""
        if not self.complete:
            self.disconnected = True
        self.wake()

    def refuse(self, status: int, message: bytes) -> None:
        """Answer `status` in the app's place unless its response has started;
        the app sees `http.disconnect` from then on."""
        transport = self.conn.transport
        if not self.started and transport is not None:
            self.status = status
            transport.write(plain_response(status, message))
        self.started = self.complete = self.disconnected = True
        self.wake()

    async def run(self, app: ASGIApp) -> None:
        """Run the app for this request, then log and count it."""
        started = time.perf_counter()
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException:
            log.exception("Exception in ASGI application")
            self._fail()
        else:
            if not self.complete and not self.disconnected:
                # How an ASGI app cuts a response short (a stream that failed
                # after its head went out): the client must see a cut body.
                log.warning("the app returned without completing its response; closing")
                self._fail()
        finally:
            finish(
                self.scope,
                status=self.status,
                started=started,
                request_id=self.request_id,
                metrics=self.conn.listener.metrics,
            )

    def _fail(self) -> None:
        if self.started or self.disconnected or self.conn.transport is None:
            self.conn.close()
            return
        self.started = self.complete = True
        self.status = 500
        self.conn.transport.write(plain_response(500, b"Internal Server Error"))
        self.conn.close()

    async def receive(self) -> AsgiMessage:
        """The next `http.request` message, or `http.disconnect`."""
        conn = self.conn
        if not self.checked_continue:
            self.checked_continue = True
            if self.more_body and not self.started and _expects_continue(self.scope):
                assert conn.transport is not None
                conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not (self.disconnected or self.complete):
            if self.body or not (self.more_body or self.delivered):
                body = bytes(self.body)
                self.body.clear()
                self.delivered = not self.more_body
                return {"type": "http.request", "body": body, "more_body": self.more_body}
            conn.resume_reading()
            self.waiter = conn.loop.create_future()
            if self.more_body:
                await self._wait_for_body(self.waiter)
            else:
                await self.waiter
        return _DISCONNECT

    async def _wait_for_body(self, waiter: asyncio.Future[None]) -> None:
        loop = self.conn.loop
        timer = loop.call_later(self.body_wait, self.conn.body_timed_out)
        started = loop.time()
        try:
            await waiter
        finally:
            timer.cancel()
            self.body_wait -= loop.time() - started

    async def send(self, message: AsgiMessage) -> None:
        """Write what the app sends; raise RuntimeError on an ASGI protocol error."""
        conn = self.conn
        paused = conn.write_paused
        if paused is not None and not paused.done() and not self.disconnected:
            await paused
        if self.disconnected or conn.transport is None:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self.started = True
            self._start(message["status"], message.get("headers", ()))
            return
        if self.complete or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        out = b""
        if self.head_only:
            pass
        elif self.chunked:
            if body:
                out = b"%x\r\n" % len(body) + body + b"\r\n"
            if not more:
                out += b"0\r\n\r\n"
        else:
            self.remaining -= len(body)
            if self.remaining < 0:
                raise RuntimeError("response content longer than Content-Length")
            out = body
        if self.pending is not None:
            if len(out) > _COPY_LIMIT:  # no copy of a large body: writev both
                conn.transport.writelines((self.pending, out))
                out = b""
            else:
                out = self.pending + out
            self.pending = None
        if out:
            conn.transport.write(out)
        if not more:
            if self.remaining > 0 and not self.head_only:
                raise RuntimeError("response content shorter than Content-Length")
            self.complete = True
            self.wake()
            conn.response_complete(self)

    def _start(self, status: int, headers: Any) -> None:
        self.status = status
        if self.more_body:  # the rest of the request body will not be read
            self.keep_alive = False
        parts = [_STATUS_LINES.get(status) or _status_line(status), _date_line()]
        length: int | None = None
        chunked = close = False
        for name, value in headers:
            if _BAD_NAME.search(name) or _BAD_VALUE.search(value):
                raise RuntimeError(f"invalid response header {name!r}")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.lower() == b"chunked"
            elif name == b"connection" and b"close" in value.lower():
                close = True
                self.keep_alive = False
            elif name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not close:
            parts.append(b"connection: close\r\n")
        if length is not None and not chunked:
            self.remaining = length
            parts.append(b"\r\n")
            self.pending = b"".join(parts)  # written with the body
            return
        if not chunked and not self.head_only and status not in (204, 304):
            chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        self.chunked = chunked
        parts.append(b"\r\n")
        assert self.conn.transport is not None
        self.conn.transport.write(b"".join(parts))


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in scope["headers"]
    )
