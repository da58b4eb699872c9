"""A small HTTP/1.1 server protocol for the gateway's ASGI app (httptools + asyncio).

One `HttpProtocol` per connection parses requests with httptools and runs each
as an `Exchange` task, one at a time: a pipelined request waits, with reading
paused, until the one before it has been answered. A response with a
Content-Length goes out in one write (status line, headers, body); one without
is chunked, each body message flushed as it comes (NDJSON, SSE). A lost
connection reaches the app as `http.disconnect`.

What one client may hold is bounded, and each breach closes its connection
with one warning line naming the peer and the reason (`Listener.warn`):

- a request head must be complete within `Limits.head_timeout` of the
  connection opening, or of its first byte on a kept-alive connection (else
  408, or a silent close if nothing came), and fit in `MAX_HEAD` (else 431);
- the app waits for one request's body `Limits.body_timeout` seconds in all
  (else 408 unless answered); a response that starts before the request body
  has arrived closes the connection after it (the 413 of an oversized body);
- a malformed request, a lying chunked body or one cut short by the client's
  EOF is 400;
- at most `MAX_PIPELINE` parsed requests wait behind the one being answered:
  a client that pipelines more gets those answered, then the connection closes;
- at most `Limits.max_connections` connections: one more closes the connection
  idle the longest (no request in progress), or is refused 503 if all are busy.

A GET asking to upgrade to a WebSocket (`ws_exchange.py`) becomes one: its
bytes go to a `WebSocketExchange` from then on, and the connection ends
with it. An upgrade pipelined behind other requests, or with a bad
handshake, is 400.

Between requests a keep-alive connection may idle `KEEP_ALIVE` seconds. A
connection closed after a response is closed in stages (RFC 9112 §9.6), so
that what the client still sends cannot reset the connection before it has
read the response: the server ends its side, then reads and drops for up to
`LINGER` seconds or `LINGER_BYTES` before closing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote

import httptools

from services.api_gateway.exchange import ASGIApp, Exchange, plain_response
from services.api_gateway.types import Scope
from services.api_gateway.ws_exchange import (
    WebSocketExchange,
    handshake_problem,
    offered_subprotocols,
    wants_websocket,
)
from services.common.metrics import RequestMetrics

log = logging.getLogger("sfmesh.api_gateway.http")

KEEP_ALIVE = 75.0
"""Seconds an idle keep-alive connection stays open (clients such as requests'
sessions expect to reuse connections for a while)."""
MAX_HEAD = 64 * 1024
"""The largest request line plus headers, in bytes; larger is answered 431."""
MAX_PIPELINE = 100
"""Parsed requests that may wait behind the one being answered. A client that
pipelines more has those answered and the connection closed, which RFC 9112
§9.3.2 tells clients to expect."""
LINGER = 2.0
"""Seconds a connection closed after a response keeps reading, to drop what
the client still sends, before it closes for good."""
LINGER_BYTES = 1 << 20
"""Bytes dropped so at most; then the connection closes at once."""
WARNINGS_PER_SECOND = 20
"""Warning lines about closed connections per second; the rest are counted."""
_BODY_HIGH_WATER = 64 * 1024
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_WEBSOCKET_EXTENSIONS: dict[str, dict[str, object]] = {"websocket.http.response": {}}


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the server (set from `GatewayConfig`)."""

    head_timeout: float
    """Seconds from a connection's opening, or from the first byte of a later
    request, until that request's head is complete."""
    body_timeout: float
    """Seconds the app may spend waiting for one request's body, in all."""
    max_connections: int
    """Open connections at most."""


class Listener:
    """The open connections and running request tasks of one server, and
    where its requests are counted."""

    def __init__(self, limits: Limits, metrics: RequestMetrics | None = None) -> None:
        """`metrics`: where each finished request is counted (`access.py`);
        None counts nothing."""
        self.limits = limits
        self.metrics = metrics
        self.connections: set[HttpProtocol] = set()
        self.idle: dict[HttpProtocol, None] = {}
        """Connections with no request in progress, longest idle first."""
        self.lingering = 0
        """Connections answered for the last time, closing in stages (not in
        `connections`: nothing waits for them to go)."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.emptied = asyncio.Event()
        """Set whenever there are neither connections nor tasks left."""
        self._window_end = 0.0
        self._warned = 0
        self._suppressed = 0

    def admit(self, connection: HttpProtocol) -> bool:
        """Count a new connection in. Past the cap, close the connection idle
        the longest; False if there is none but this one (every other is busy)."""
        self.connections.add(connection)
        self.idle[connection] = None
        self.emptied.clear()
        if len(self.connections) + self.lingering <= self.limits.max_connections:
            return True
        oldest = next(iter(self.idle))
        if oldest is connection:
            return False
        self.warn(oldest.peer, f"idle the longest when {len(self.connections)} were open")
        oldest.close()
        return True

    def discard(self, item: HttpProtocol | asyncio.Task[None]) -> None:
        """Forget a closed connection or a finished task."""
        if isinstance(item, HttpProtocol):
            self.connections.discard(item)
            self.idle.pop(item, None)
        else:
            self.tasks.discard(item)
        if not self.connections and not self.tasks:
            self.emptied.set()

    def warn(self, peer: str, reason: str) -> None:
        """Log a connection closed for `reason`: one line, or past
        `WARNINGS_PER_SECOND` a count at the end of the second."""
        now = time.monotonic()
        if now >= self._window_end:
            self._flush()
            self._window_end = now + 1.0
            self._warned = 0
        if self._warned < WARNINGS_PER_SECOND:
            self._warned += 1
            log.warning("closing the connection from %s: %s", peer, reason)
            return
        if not self._suppressed:
            asyncio.get_running_loop().call_later(self._window_end - now, self._flush)
        self._suppressed += 1

    def _flush(self) -> None:
        if self._suppressed:
            log.warning("closing %d more connections (not logged one by one)", self._suppressed)
            self._suppressed = 0


class HttpProtocol(asyncio.Protocol):
    """One client connection: parse, run exchanges in order, keep alive, bound."""

    def __init__(self, app: ASGIApp, listener: Listener) -> None:
        self.app = app
        self.listener = listener
        self.limits = listener.limits
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.active: Exchange | None = None
        self.parsing: Exchange | None = None
        """The exchange whose request body is being read."""
        self.waiting: deque[Exchange] = deque()
        self.websocket: WebSocketExchange | None = None
        """The WebSocket this connection became, if it did."""
        self.upgraded = False
        """Bytes go to `websocket` from now on."""
        self.write_paused: asyncio.Future[None] | None = None
        self.reading_paused = False
        self.refusing = False
        """No more requests are read from this connection."""
        self.closing = False
        self.lingering = False
        """Answered for the last time and closing in stages."""
        self._dropped = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = False
        self._head_bytes = 0
        self._ended_in_feed = False
        self._head_mid_read = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_is_idle = False
        self._final = b""
        """A refusal to write once the responses before it are out."""
        self._addresses: tuple[object, object] = (None, None)
        self._scheme = "http"

    # --- connection ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._addresses = (
            transport.get_extra_info("sockname"),
            transport.get_extra_info("peername"),
        )
        self.peer = _peer_name(self._addresses[1])
        if transport.get_extra_info("ssl_object") is not None:
            self._scheme = "https"
        if not self.listener.admit(self):
            limit = self.limits.max_connections
            self.listener.warn(self.peer, f"{limit} connections open and none idle")
            self.transport.write(plain_response(503, b"Too many connections."))
            self.close()
            return
        self._timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.discard(self)
        if self.lingering:
            self.listener.lingering -= 1
        self.closing = True
        self._cancel_timer()
        self.waiting.clear()
        if self.active is not None:
            self.active.lost()
        if self.websocket is not None:
            self.websocket.lost()
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    def eof_received(self) -> None:
        """The client has gone (a half-close counts as gone, so that a client that
        leaves cancels its request); a request it cut short is answered 400."""
        if not self.refusing and (self._in_head or self.parsing is not None):
            self._reject(400, b"Request ended early.", "the request ended unfinished")

    def pause_writing(self) -> None:
        if self.write_paused is None or self.write_paused.done():
            self.write_paused = self.loop.create_future()
        if self.websocket is not None:
            self.websocket.writing_paused()

    def resume_writing(self) -> None:
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)
        if self.websocket is not None:
            self.websocket.writing_resumed()

    def data_received(self, data: bytes) -> None:
        if self.refusing:  # only while lingering: reading is paused otherwise
            self._dropped += len(data)
            if self._dropped > LINGER_BYTES and self.transport is not None:
                self.transport.close()
            return
        if self.upgraded and self.websocket is not None:
            self.websocket.feed(data)
            return
        if self._timer_is_idle:
            self._cancel_timer()
        self._ended_in_feed = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self.websocket is not None and not self.refusing:
                self.upgraded = True
                rest = data[upgrade.args[0] :]
                if rest:
                    self.websocket.feed(rest)
                return
            # No other upgrades here: answer the request as plain HTTP, then close.
            self._read_no_more()
            return
        except httptools.HttpParserError as exc:
            self._reject(400, b"Invalid HTTP request received.", f"malformed request ({exc})")
            return
        if self._in_head and not self.refusing:
            # Whole reads count; the read in which a head began after another
            # message ended does not (slack of one read, bounded).
            if not self._head_mid_read:
                self._head_bytes += len(data)
            self._head_mid_read = False
            if self._head_bytes > MAX_HEAD:
                self._reject(431, b"Request header fields too large.", "request head too large")
            elif self._timer is None:
                self._timer = self.loop.call_later(self.limits.head_timeout, self._head_timed_out)

    def close(self) -> None:
        """Close the connection (an exchange in flight sees `http.disconnect`)."""
        self.closing = True
        self._cancel_timer()
        self.listener.discard(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection and whatever it has not sent yet."""
        self.closing = True
        self._cancel_timer()
        self.listener.discard(self)
        if self.transport is not None:
            self.transport.abort()

    def close_after_answer(self) -> None:
        """Close in stages: end this side, drop what the client still sends
        for a while (so its unread answer is not reset away), then close."""
        transport = self.transport
        if self.lingering:
            return
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        self.closing = self.refusing = self.lingering = True
        self._cancel_timer()
        self.listener.discard(self)
        self.listener.lingering += 1
        transport.write_eof()
        self.reading_paused = False
        transport.resume_reading()
        self._timer = self.loop.call_later(LINGER, transport.close)

    def shutdown(self) -> None:
        """Close now if idle, else after the response in flight (a
        WebSocket's app closes it: the gateway app is told to stop)."""
        if self.websocket is not None:
            return
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
        if self.reading_paused and not (self.closing or self.refusing) and self.transport:
            self.reading_paused = False
            self.transport.resume_reading()

    def body_timed_out(self) -> None:
        """The app has waited `body_timeout` seconds in all for the request body."""
        if self.closing:
            return
        reason = f"request body unfinished after {self.limits.body_timeout:g} s"
        self._reject(408, b"Request body not received in time.", reason)

    # --- limits ---

    def _head_timed_out(self) -> None:
        self._timer = None
        timeout = self.limits.head_timeout
        if self.reading_paused:  # the server is the one not reading
            self._timer = self.loop.call_later(timeout, self._head_timed_out)
        elif self._in_head:
            reason = f"request head unfinished after {timeout:g} s"
            self._reject(408, b"Request head not received in time.", reason)
        else:
            self.listener.warn(self.peer, f"no request within {timeout:g} s")
            self.close()

    def _idle_timed_out(self) -> None:
        self._timer = None
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_is_idle = False

    def _reject(self, status: int, message: bytes, reason: str) -> None:
        """Refuse the request being read: answer `status` in its turn, after the
        requests before it, log `reason`, read no more and close."""
        self.listener.warn(self.peer, reason)
        self.refusing = True
        self._cancel_timer()
        bad, active = self.parsing, self.active
        self.parsing = None
        if active is None or active.complete:
            if self.transport is not None:
                self.transport.write(plain_response(status, message))
            self.close_after_answer()
        elif bad is active:  # the app is reading this body: answer in its place
            active.refuse(status, message)
            self.close_after_answer()
        else:
            if bad is not None:
                self.waiting.remove(bad)
            self._final = plain_response(status, message)
            self._read_no_more()

    def _read_no_more(self) -> None:
        """Answer the requests already read, then close."""
        self.refusing = True
        self.parsing = None
        self.pause_reading()
        last = self._last_request()
        if last is None or last.complete:
            self.close_after_answer()
        else:
            last.keep_alive = False

    def _last_request(self) -> Exchange | None:
        return self.waiting[-1] if self.waiting else self.active

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._in_head = True
        self._head_bytes = 0
        self._head_mid_read = self._ended_in_feed

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._timer is not None:
            self._cancel_timer()
        if self.refusing:
            return
        if self.active is not None and len(self.waiting) >= MAX_PIPELINE:
            self.listener.warn(self.peer, f"more than {MAX_PIPELINE} requests pipelined")
            self._read_no_more()
            return
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
            "scheme": self._scheme,
            "root_path": "",
            "method": parser.get_method().decode("ascii"),
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "state": {},
        }
        if wants_websocket(str(scope["method"]), self._headers):
            self._upgrade(scope)
            return
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
        self._ended_in_feed = True
        exchange = self.parsing
        if exchange is not None:
            self.parsing = None
            exchange.more_body = False
            exchange.wake()

    # --- exchanges ---

    def _upgrade(self, scope: Scope) -> None:
        """Turn this connection into a WebSocket: its app runs now."""
        if self.active is not None or self.waiting:
            self._reject(400, b"WebSocket upgrade behind other requests.", "pipelined upgrade")
            return
        problem = handshake_problem(self._headers)
        if problem is not None:
            self._reject(400, problem.encode(), f"bad WebSocket handshake ({problem})")
            return
        scope["type"] = "websocket"
        scope["scheme"] = "wss" if self._scheme == "https" else "ws"
        scope["subprotocols"] = offered_subprotocols(self._headers)
        scope["extensions"] = _WEBSOCKET_EXTENSIONS
        websocket = self.websocket = WebSocketExchange(self, scope)
        self.listener.idle.pop(self, None)
        task = self.loop.create_task(websocket.run(self.app))
        self.listener.tasks.add(task)
        task.add_done_callback(self.listener.discard)

    def _start(self, exchange: Exchange) -> None:
        self.active = exchange
        self.listener.idle.pop(self, None)
        task = self.loop.create_task(exchange.run(self.app))
        self.listener.tasks.add(task)
        task.add_done_callback(self.listener.discard)

    def response_complete(self, exchange: Exchange) -> None:
        """Called by the active exchange once its response is fully written."""
        if exchange.more_body:
            self.listener.warn(self.peer, "answered before the request body ended")
        if not exchange.keep_alive:
            if self._final and self.transport is not None:
                self.transport.write(self._final)
            self.close_after_answer()
        if self.closing:
            return
        self.active = None
        self.resume_reading()
        if self.waiting:
            self._start(self.waiting.popleft())
            return
        self.listener.idle[self] = None
        if self._timer is None:  # else a next request's head has begun: its timer runs
            self._timer = self.loop.call_later(KEEP_ALIVE, self._idle_timed_out)
            self._timer_is_idle = True


def _peer_name(address: object) -> str:
    """`host:port` of a peer address, `[host]:port` for IPv6."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)
