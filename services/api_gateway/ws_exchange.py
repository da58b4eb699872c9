"""One WebSocket (RFC 6455) on a connection of the gateway's HTTP server,
as an ASGI `websocket` scope.

`http_server.py` hands a request that asks to upgrade to a WebSocket to a
`WebSocketExchange`; from the upgrade on, every byte the client sends comes
here, framed and unframed by wsproto's sans-I/O `Connection` (no
extensions: permessage-deflate is not offered, so a frame never inflates).

The app sees ASGI's messages: `websocket.connect` first; then it accepts
(`websocket.accept`: the 101 goes out), or refuses with a whole HTTP answer
(`websocket.http.response.start`/`body`, the denial extension) or with
`websocket.close` (403). Once open, `websocket.receive` carries `bytes` or
`text`, `websocket.send` sends either, `websocket.close` starts the closing
handshake and `websocket.disconnect` says the client is gone, with its close
code. A frame is not buffered whole: its payload reaches the app in the
pieces the network delivers (a byte stream such as VNC's needs no message
boundaries), so memory holds one read, not one frame.

Bounds, each breach closing the socket: a message longer than
`MAX_MESSAGE` (1009); bytes the app has not taken yet past `INBOX_HIGH`
pause reading (backpressure to the client; resumed under half of it); the
app's sends wait while the transport's buffer is full (backpressure from
the client), and meanwhile nothing is read and no ping is answered, so a
client that does not read cannot grow that buffer; a buffer full for
`WRITE_STALL` seconds aborts the connection; a ping every `PING_INTERVAL`,
and a client silent for two intervals is cut (1006 to the app); once either
side sent its Close (never held back by a full buffer), the other has
`CLOSE_WAIT` seconds to answer before the connection closes, and
`CLOSE_WAIT` more to take what is still buffered before it is aborted.
Bytes that arrive before the 101 break RFC 6455 §4.1 and cut the connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import ProtocolError, generate_accept_token

from services.api_gateway.access import finish
from services.api_gateway.exchange import ASGIApp, plain_response, status_line
from services.api_gateway.types import AsgiMessage, Scope

if TYPE_CHECKING:
    from services.api_gateway.http_server import HttpProtocol

log = logging.getLogger("sfmesh.api_gateway.http")

MAX_MESSAGE = 1 << 20
"""The longest message a client may send, in bytes; longer closes with 1009."""
INBOX_HIGH = 1 << 20
"""Bytes received and not yet taken by the app at which reading pauses."""
PING_INTERVAL = 20.0
"""Seconds between pings; a client that sends nothing for two is gone."""
CLOSE_WAIT = 5.0
"""Seconds a Close waits for the other side's Close before the connection goes."""
WRITE_STALL = 30.0
"""Seconds the transport's buffer may stay full before the connection is aborted."""
VERSION = b"13"


def wants_websocket(method: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request asks to become a WebSocket: GET with `Upgrade:
    websocket` and `Connection: upgrade`. Pure."""
    if method != "GET":
        return False
    upgrade = b",".join(value for name, value in headers if name == b"upgrade")
    connection = b",".join(value for name, value in headers if name == b"connection")
    return b"websocket" in _tokens(upgrade) and b"upgrade" in _tokens(connection)


def handshake_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """What is wrong with a WebSocket opening handshake's headers (RFC 6455
    §4.2.1), or None. Pure."""
    found = dict(headers)
    if found.get(b"sec-websocket-version", b"").strip() != VERSION:
        return "Sec-WebSocket-Version must be 13"
    key = found.get(b"sec-websocket-key", b"").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except (binascii.Error, ValueError):
        return "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


def accept_head(key: bytes, subprotocol: str | None, extra: list[tuple[bytes, bytes]]) -> bytes:
    """The 101 answer that opens a WebSocket. Pure."""
    lines = [
        status_line(101),
        b"upgrade: websocket\r\nconnection: Upgrade\r\n",
        b"sec-websocket-accept: " + generate_accept_token(key) + b"\r\n",
    ]
    if subprotocol:
        lines.append(b"sec-websocket-protocol: " + subprotocol.encode("ascii") + b"\r\n")
    lines += [name + b": " + value + b"\r\n" for name, value in extra]
    lines.append(b"\r\n")
    return b"".join(lines)


def offered_subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The subprotocols a client offers, in its order. Pure."""
    offered = b",".join(value for name, value in headers if name == b"sec-websocket-protocol")
    return [token.decode("latin-1") for token in _tokens(offered, lower=False)]


def _tokens(value: bytes, *, lower: bool = True) -> list[bytes]:
    parts = [part.strip() for part in value.split(b",")]
    return [part.lower() if lower else part for part in parts if part]


class WebSocketExchange:
    """One upgraded request and the WebSocket it became."""

    def __init__(self, conn: HttpProtocol, scope: Scope) -> None:
        self.conn = conn
        self.scope = scope
        self.key = dict(scope["headers"]).get(b"sec-websocket-key", b"").strip()
        self.ws = Connection(ConnectionType.SERVER)
        self.state = "connecting"
        """connecting → open → closing → closed, or connecting → denied."""
        self.inbox: deque[AsgiMessage] = deque()
        self.inbox_bytes = 0
        self.message_bytes = 0
        self.connect_delivered = False
        self.close_code: int | None = None
        """Set once the app is to see `websocket.disconnect`."""
        self.waiter: asyncio.Future[None] | None = None
        self.heard = True
        self.status = 0
        self.request_id = ""
        self.denial: list[bytes] = []
        self.denial_head: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None

    # --- the app's side ---

    async def run(self, app: ASGIApp) -> None:
        """Run the app for this socket, then end it, log and count it."""
        started = time.perf_counter()
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException:
            log.exception("Exception in ASGI application (WebSocket)")
            self._end(CloseReason.INTERNAL_ERROR, "gateway error")
        else:
            self._end(CloseReason.NORMAL_CLOSURE, "")
        finally:
            finish(
                self.scope,
                status=self.status,
                started=started,
                request_id=self.request_id,
                metrics=self.conn.listener.metrics,
                websocket=True,
            )

    async def receive(self) -> AsgiMessage:
        """`websocket.connect`, then each `websocket.receive`, then
        `websocket.disconnect` (again on every later call)."""
        if not self.connect_delivered:
            self.connect_delivered = True
            return {"type": "websocket.connect"}
        while True:
            if self.inbox:
                message = self.inbox.popleft()
                self.inbox_bytes -= _size(message)
                self._maybe_resume_reading()
                return message
            if self.close_code is not None:
                return {"type": "websocket.disconnect", "code": self.close_code}
            self.waiter = self.conn.loop.create_future()
            await self.waiter

    async def send(self, message: AsgiMessage) -> None:
        """Act on what the app sends; RuntimeError on an ASGI protocol error."""
        kind = message["type"]
        if self.state == "closed":  # the connection is gone: nothing to send on
            return
        paused = self.conn.write_paused
        if (
            paused is not None
            and not paused.done()
            and self.close_code is None
            and kind != "websocket.close"
        ):
            await paused
        if self.state == "connecting":
            self._send_connecting(kind, message)
        elif kind == "websocket.http.response.body" and self.state == "denied":
            self._deny_body(message)
        elif kind == "websocket.send":
            if self.state == "open" and self.close_code is None:
                data = message.get("bytes")
                event: Message = (
                    BytesMessage(data=data)
                    if data is not None
                    else TextMessage(data=str(message.get("text") or ""))
                )
                self._write(self.ws.send(event))
        elif kind == "websocket.close":
            self.close(message.get("code", 1000), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} ({self.state})")

    def _send_connecting(self, kind: str, message: AsgiMessage) -> None:
        transport = self.conn.transport
        if kind == "websocket.accept" and self.close_code is not None:
            self.state = "closed"  # the client broke off before the 101
        elif kind == "websocket.accept":
            headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            self._note_request_id(headers)
            self.status = 101
            self.state = "open"
            if transport is not None and self.close_code is None:
                transport.write(accept_head(self.key, message.get("subprotocol"), headers))
            self._timer = self.conn.loop.call_later(PING_INTERVAL, self._tick)
        elif kind == "websocket.close":
            self.status = 403
            self.state = "denied"
            if transport is not None:
                transport.write(plain_response(403, b"WebSocket refused."))
            self._gone(CloseReason.ABNORMAL_CLOSURE)
            self.conn.close_after_answer()
        elif kind == "websocket.http.response.start":
            headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            self._note_request_id(headers)
            self.state = "denied"
            self.denial_head = (int(message["status"]), headers)
        else:
            raise RuntimeError(f"expected websocket.accept or a refusal, got {kind!r}")

    def _deny_body(self, message: AsgiMessage) -> None:
        self.denial.append(bytes(message.get("body", b"")))
        if message.get("more_body", False) or self.denial_head is None:
            return
        status, headers = self.denial_head
        self.status = status
        body = b"".join(self.denial)
        kept = [(n, v) for n, v in headers if n not in (b"content-length", b"connection")]
        head = [status_line(status), *(n + b": " + v + b"\r\n" for n, v in kept)]
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        if self.conn.transport is not None:
            self.conn.transport.write(b"".join(head) + body)
        self._gone(CloseReason.ABNORMAL_CLOSURE)
        self.conn.close_after_answer()

    def _note_request_id(self, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b"x-request-id":
                self.request_id = value.decode("latin-1")

    # --- the client's side ---

    def feed(self, data: bytes) -> None:
        """Bytes from the client, from the upgrade on."""
        self.heard = True
        if self.ws.state is ConnectionState.CLOSED or self.state in ("denied", "closed"):
            return
        if self.state == "connecting":  # RFC 6455 §4.1: nothing before the 101
            self.conn.listener.warn(self.conn.peer, "WebSocket data before the handshake ended")
            self._gone(int(CloseReason.PROTOCOL_ERROR))
            self._close_transport()
            return
        try:
            self.ws.receive_data(data)
            for event in self.ws.events():
                self._on_event(event)
        except ProtocolError as exc:
            self.conn.listener.warn(self.conn.peer, f"WebSocket protocol error ({exc})")
            self._gone(int(CloseReason.PROTOCOL_ERROR))
            self._close_transport()

    def _on_event(self, event: object) -> None:
        if isinstance(event, Message):
            self._on_message(event)
        elif isinstance(event, Ping):
            if self.ws.state is ConnectionState.OPEN and not self._writes_paused():
                self._write(self.ws.send(event.response()))
        elif isinstance(event, Pong):
            pass  # `heard` is set already
        elif isinstance(event, CloseConnection):
            if self.ws.state is ConnectionState.REMOTE_CLOSING:  # the client closes
                self._write(self.ws.send(event.response()))
            elif self.ws.state is ConnectionState.OPEN:  # a frame wsproto could not parse
                self.conn.listener.warn(self.conn.peer, f"WebSocket frame refused ({event.reason})")
                self._write(self.ws.send(CloseConnection(code=event.code, reason="protocol error")))
            self._gone(int(event.code))
            self._close_transport()

    def _on_message(self, event: Message) -> None:
        if self.close_code is not None or self.state in ("closing", "closed", "denied"):
            return
        if isinstance(event, BytesMessage):
            data = bytes(event.data)
            message: AsgiMessage = {"type": "websocket.receive", "bytes": data}
            size = len(data)
        else:
            text = str(event.data)
            message = {"type": "websocket.receive", "text": text}
            size = len(text.encode())
        self.message_bytes += size
        if self.message_bytes > MAX_MESSAGE:
            self.close(int(CloseReason.MESSAGE_TOO_BIG), "message too big")
            self._gone(int(CloseReason.MESSAGE_TOO_BIG))
            return
        if event.message_finished:
            self.message_bytes = 0
        if size:
            self.inbox.append(message)
            self.inbox_bytes += size
            if self.inbox_bytes > INBOX_HIGH:
                self.conn.pause_reading()
            self._wake()

    def lost(self) -> None:
        """The connection is gone."""
        self._cancel_timer()
        self._cancel_stall()
        self._gone(int(CloseReason.ABNORMAL_CLOSURE))
        if self.state != "denied":
            self.state = "closed"

    # --- closing ---

    def close(self, code: int, reason: str) -> None:
        """Send our Close (once) and give the client `CLOSE_WAIT` to answer."""
        if self.state != "open" or self.ws.state is not ConnectionState.OPEN:
            if self.ws.state is ConnectionState.REMOTE_CLOSING:
                self._write(self.ws.send(CloseConnection(code=code, reason=reason)))
                self._close_transport()
            return
        self.state = "closing"
        self._write(self.ws.send(CloseConnection(code=code, reason=_bounded_reason(reason))))
        self._cancel_timer()
        self._timer = self.conn.loop.call_later(CLOSE_WAIT, self._close_transport)

    def _end(self, code: int, reason: str) -> None:
        """The app returned: close whatever is still open."""
        if self.state == "connecting":  # returned without answering: ASGI says 403
            self.status = 403
            if self.conn.transport is not None:
                self.conn.transport.write(plain_response(403, b"WebSocket refused."))
            self.state = "denied"
            self.conn.close_after_answer()
        elif self.state == "open":
            self.close(code, reason)
        elif self.state == "denied" and self.denial_head is not None and self.status == 0:
            self.conn.close()  # a denial never finished

    def _gone(self, code: int) -> None:
        if self.close_code is None:
            self.close_code = code
        self._wake()

    def _close_transport(self) -> None:
        """Close; abort if what is buffered is not taken within `CLOSE_WAIT`."""
        self._cancel_timer()
        self.state = "closed"
        self.conn.close()
        transport = self.conn.transport
        if transport is not None and transport.get_write_buffer_size():
            self._timer = self.conn.loop.call_later(CLOSE_WAIT, self._abort, "closing")

    def _abort(self, why: str) -> None:
        self._timer = self._stall = None
        self.conn.listener.warn(self.conn.peer, f"WebSocket client not reading ({why}): aborted")
        self._gone(int(CloseReason.ABNORMAL_CLOSURE))
        self.state = "closed"
        self.conn.abort()

    # --- backpressure from the client ---

    def writing_paused(self) -> None:
        """The transport's buffer is full: read nothing more (so answer no
        ping) until it drains, and abort if it does not within `WRITE_STALL`."""
        self.conn.pause_reading()
        if self._stall is None:
            self._stall = self.conn.loop.call_later(WRITE_STALL, self._abort, "write stalled")

    def writing_resumed(self) -> None:
        self._cancel_stall()
        self._maybe_resume_reading()

    def _writes_paused(self) -> bool:
        paused = self.conn.write_paused
        return paused is not None and not paused.done()

    def _maybe_resume_reading(self) -> None:
        if self.inbox_bytes <= INBOX_HIGH // 2 and not self._writes_paused():
            self.conn.resume_reading()

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _tick(self) -> None:
        """Ping, or cut a client that answered nothing since the last ping."""
        self._timer = None
        if self.state != "open" or self.ws.state is not ConnectionState.OPEN:
            return
        if not self.heard:
            self.conn.listener.warn(self.conn.peer, "WebSocket client silent for two pings")
            self._gone(int(CloseReason.ABNORMAL_CLOSURE))
            self._close_transport()
            return
        self.heard = False
        if not self._writes_paused():
            self._write(self.ws.send(Ping()))
        self._timer = self.conn.loop.call_later(PING_INTERVAL, self._tick)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _write(self, data: bytes) -> None:
        transport = self.conn.transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _size(message: AsgiMessage) -> int:
    if "bytes" in message:
        return len(message["bytes"])
    return len(message.get("text", "").encode())


def _bounded_reason(reason: str) -> str:
    """A close reason that fits a control frame (123 bytes of UTF-8). Pure."""
    encoded = reason.encode()[:123]
    return encoded.decode(errors="ignore")
