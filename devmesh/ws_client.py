"""A small asyncio WebSocket client (wsproto), for tests and benchmarks of
the gateway's WebSocket routes: binary messages both ways, the close code
and reason, and a refused handshake's HTTP status and body."""

from __future__ import annotations

import asyncio
import base64
import os
from collections import deque
from urllib.parse import urlsplit

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import generate_accept_token

READ = 64 * 1024
HANDSHAKE_TIMEOUT = 10.0


class Refused(Exception):
    """The server answered the handshake with an HTTP status, not 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"{status}: {body[:200]!r}")
        self.status = status
        self.body = body


class WebSocket:
    """One open WebSocket."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rest: bytes
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._ws = Connection(ConnectionType.CLIENT)
        self._messages: deque[bytes | str] = deque()
        self.close_code: int | None = None
        self.close_reason = ""
        if rest:
            self._ws.receive_data(rest)

    async def send(self, data: bytes) -> None:
        """Send one binary message."""
        self._writer.write(self._ws.send(BytesMessage(data=data)))
        await self._writer.drain()

    def ping(self, payload: bytes = b"") -> None:
        """Send a Ping (not waiting for the socket to take it)."""
        if not self._writer.transport.is_closing():
            self._writer.write(self._ws.send(Ping(payload)))

    async def send_text(self, text: str) -> None:
        """Send one text message."""
        self._writer.write(self._ws.send(TextMessage(data=text)))
        await self._writer.drain()

    async def recv(self) -> bytes | str | None:
        """The next piece of a message (a frame's payload as it came), or
        None once the server closed (see `close_code`)."""
        while True:
            self._take_events()
            if self._messages:
                return self._messages.popleft()
            if self.close_code is not None:
                return None
            data = await self._reader.read(READ)
            if not data:
                self._ws.receive_data(None)
                self._take_events()
                return None if not self._messages else self._messages.popleft()
            self._ws.receive_data(data)

    async def recv_bytes(self, size: int) -> bytes:
        """Exactly `size` bytes of binary messages (EOFError if the socket ends)."""
        out = bytearray()
        while len(out) < size:
            piece = await self.recv()
            if piece is None:
                raise EOFError(f"closed {self.close_code} {self.close_reason!r} after {len(out)}")
            if isinstance(piece, str):
                raise ValueError("text message")
            out += piece
        if len(out) > size:
            self._messages.appendleft(bytes(out[size:]))
        return bytes(out[:size])

    async def close(self, code: int = 1000) -> None:
        """Send our Close and wait (a little) for the server's."""
        if self._ws.state is ConnectionState.OPEN:
            self._writer.write(self._ws.send(CloseConnection(code=code)))
            await self._writer.drain()
            try:
                async with asyncio.timeout(2):
                    while await self.recv() is not None:
                        pass
            except TimeoutError:
                pass
        self._writer.close()

    def abort(self) -> None:
        """Drop the connection without a Close."""
        self._writer.transport.abort()

    def _take_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, Message):
                self._messages.append(event.data)
            elif isinstance(event, Ping):
                self._writer.write(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.close_code, self.close_reason = int(event.code), event.reason or ""
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    self._writer.write(self._ws.send(event.response()))


async def connect(url: str, *, subprotocols: tuple[str, ...] = ()) -> WebSocket:
    """Open a WebSocket at `url` (ws://host:port/path?query) within
    `HANDSHAKE_TIMEOUT`; Refused when the server answers anything but 101."""
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        return await _connect(url, subprotocols)


async def _connect(url: str, subprotocols: tuple[str, ...]) -> WebSocket:
    parts = urlsplit(url)
    port = parts.port or 80
    reader, writer = await asyncio.open_connection(parts.hostname, port)
    key = base64.b64encode(os.urandom(16))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {parts.hostname}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)
    }
    if status != 101:
        length = int(headers.get(b"content-length", b"0"))
        body = await reader.readexactly(length) if length else b""
        writer.close()
        raise Refused(status, body)
    if headers.get(b"sec-websocket-accept") != generate_accept_token(key):
        writer.close()
        raise Refused(status, b"bad Sec-WebSocket-Accept")
    return WebSocket(reader, writer, b"")
