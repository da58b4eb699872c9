"""A small HTTP/1.1 server protocol for the gateway's ASGI app (httptools + asyncio).

One `HttpProtocol` per connection parses requests with httptools and runs each
as an `Exchange` task, one at a time: a pipelined request waits, with reading
paused, until the one before it has been answered. Keep-alive connections idle
for `KEEP_ALIVE` seconds are closed. A response with a Content-Length goes out
in one write (status line, headers, body); one without is chunked, each body
message flushed as it comes (NDJSON, SSE). A lost connection reaches the app as
`http.disconnect`. A malformed request is answered 400, oversized headers 431.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast
from urllib.parse import unquote

import httptools

from services.api_gateway.exchange import ASGIApp, Exchange, plain_response

log = logging.getLogger("sfmesh.api_gateway.http")

KEEP_ALIVE = 75.0
"""Seconds an idle keep-alive connection stays open (clients such as requests'
sessions expect to reuse connections for a while)."""
MAX_HEAD = 64 * 1024
"""The largest request line plus headers, in bytes; larger is answered 431."""
_BODY_HIGH_WATER = 64 * 1024
_ASGI = {"version": "3.0", "spec_version": "2.3"}


class Listener:
    """The open connections and running request tasks of one server."""

    def __init__(self) -> None:
        self.connections: set[HttpProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.emptied = asyncio.Event()
        """Set whenever there are neither connections nor tasks left."""

    def discard(self, item: HttpProtocol | asyncio.Task[None]) -> None:
        """Forget a closed connection or a finished task."""
        if isinstance(item, HttpProtocol):
            self.connections.discard(item)
        else:
            self.tasks.discard(item)
        if not self.connections and not self.tasks:
            self.emptied.set()


class HttpProtocol(asyncio.Protocol):
    """One client connection: parse, run exchanges in order, keep alive."""

    def __init__(self, app: ASGIApp, listener: Listener) -> None:
        self.app = app
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport | None = None
        self.active: Exchange | None = None
        self.parsing: Exchange | None = None
        self.waiting: deque[Exchange] = deque()
        self.write_paused: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.closing = False
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = False
        self._head_bytes = 0
        self._idle: asyncio.TimerHandle | None = None
        self._addresses: tuple[object, object] = (None, None)

    # --- connection ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._addresses = (
            transport.get_extra_info("sockname"),
            transport.get_extra_info("peername"),
        )
        self.listener.connections.add(self)
        self.listener.emptied.clear()
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.discard(self)
        self.closing = True
        self._disarm_idle()
        self.waiting.clear()
        if self.active is not None:
            self.active.lost()
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    def pause_writing(self) -> None:
        if self.write_paused is None or self.write_paused.done():
            self.write_paused = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._idle is not None:
            self._disarm_idle()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrades here: answer the request as plain HTTP, then close.
            if self.parsing is not None:
                self.parsing.keep_alive = False
            return
        except httptools.HttpParserError:
            self._reject(400, b"Invalid HTTP request received.")
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._reject(431, b"Request header fields too large.")

    def _reject(self, status: int, message: bytes) -> None:
        assert self.transport is not None
        if self.active is None or self.active.complete:
            self.transport.write(plain_response(status, message))
        self.close()

    def close(self) -> None:
        """Close the connection (an exchange in flight sees `http.disconnect`)."""
        self.closing = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """Close now if idle, else after the response in flight."""
        if self.active is None or self.active.complete:
            self.close()
        else:
            self.active.keep_alive = False
            self.waiting.clear()

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.closing and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    def _arm_idle(self) -> None:
        self._idle = self.loop.call_later(KEEP_ALIVE, self.close)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._in_head = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self.parser
        version = parser.get_http_version()
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self._addresses[0],
            "client": self._addresses[1],
            "scheme": "http",
            "root_path": "",
            "method": parser.get_method().decode("ascii"),
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "state": {},
        }
        keep_alive = version != "1.0" and parser.should_keep_alive()
        exchange = Exchange(self, scope, keep_alive)
        self.parsing = exchange
        if self.active is None:
            self._start(exchange)
        else:
            self.waiting.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.parsing
        if exchange is not None and not exchange.complete:
            exchange.body += body
            if len(exchange.body) > _BODY_HIGH_WATER:
                self.pause_reading()
            exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.parsing
        if exchange is not None:
            exchange.more_body = False
            exchange.wake()

    # --- exchanges ---

    def _start(self, exchange: Exchange) -> None:
        self.active = exchange
        task = self.loop.create_task(exchange.run(self.app))
        self.listener.tasks.add(task)
        task.add_done_callback(self.listener.discard)

    def response_complete(self, exchange: Exchange) -> None:
        """Called by the active exchange once its response is fully written."""
        if not exchange.keep_alive:
            self.close()
        if self.closing:
            return
        self.active = None
        self.resume_reading()
        if self.waiting:
            self._start(self.waiting.popleft())
        else:
            self._arm_idle()
