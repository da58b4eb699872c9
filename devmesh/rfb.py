"""A minimal VNC (RFB 3.8, RFC 6143) client, for tests and benchmarks of
the browser console: the handshake with no authentication (QEMU's
consoles have none), a framebuffer update request and its answer in Raw
encoding, key events. It speaks over a plain TCP connection or the
gateway's WebSocket alike (`Pipe`)."""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Protocol

from devmesh.ws_client import WebSocket

RAW = 0
FRAMEBUFFER_UPDATE = 0


class Pipe(Protocol):
    """Bytes both ways."""

    async def read(self, size: int) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


class TcpPipe:
    """An RFB connection straight to a console's port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> TcpPipe:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def read(self, size: int) -> bytes:
        return await self.reader.readexactly(size)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


class SocketPipe:
    """An RFB connection through the gateway's WebSocket."""

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket

    async def read(self, size: int) -> bytes:
        return await self.socket.recv_bytes(size)

    async def write(self, data: bytes) -> None:
        await self.socket.send(data)


@dataclass(frozen=True)
class Screen:
    """What ServerInit said."""

    width: int
    height: int
    bytes_per_pixel: int
    name: str


@dataclass(frozen=True)
class Rectangle:
    """One rectangle of a framebuffer update."""

    x: int
    y: int
    width: int
    height: int
    encoding: int
    pixels: bytes


async def handshake(pipe: Pipe) -> Screen:
    """Version 3.8, security None, a shared ClientInit; Raw encoding only."""
    version = await pipe.read(12)
    if not version.startswith(b"RFB 003."):
        raise ValueError(f"not an RFB server: {version!r}")
    await pipe.write(b"RFB 003.008\n")
    (count,) = await pipe.read(1)
    types = await pipe.read(count)
    if 1 not in types:
        raise ValueError(f"no 'None' security among {list(types)}")
    await pipe.write(b"\x01")
    (result,) = struct.unpack(">I", await pipe.read(4))
    if result != 0:
        raise ValueError("security handshake failed")
    await pipe.write(b"\x01")  # shared
    width, height = struct.unpack(">HH", await pipe.read(4))
    pixel_format = await pipe.read(16)
    (length,) = struct.unpack(">I", await pipe.read(4))
    name = (await pipe.read(length)).decode(errors="replace")
    await pipe.write(struct.pack(">BxHi", 2, 1, RAW))  # SetEncodings: Raw
    return Screen(width, height, pixel_format[0] // 8, name)


async def request_update(
    pipe: Pipe, screen: Screen, *, incremental: bool, area: tuple[int, int] | None = None
) -> None:
    """FramebufferUpdateRequest for the whole screen, or its top left `area`
    (width, height)."""
    width, height = area or (screen.width, screen.height)
    await pipe.write(struct.pack(">BBHHHH", 3, incremental, 0, 0, width, height))


async def read_update(pipe: Pipe, screen: Screen) -> list[Rectangle]:
    """The next FramebufferUpdate (other server messages are skipped)."""
    while True:
        (kind,) = await pipe.read(1)
        if kind == FRAMEBUFFER_UPDATE:
            break
        if kind == 2:  # Bell
            continue
        if kind == 3:  # ServerCutText
            _, length = struct.unpack(">3sI", await pipe.read(7))
            await pipe.read(length)
            continue
        raise ValueError(f"unexpected server message {kind}")
    _, count = struct.unpack(">BH", await pipe.read(3))
    rectangles = []
    for _ in range(count):
        x, y, width, height, encoding = struct.unpack(">HHHHi", await pipe.read(12))
        if encoding != RAW:
            raise ValueError(f"encoding {encoding} not asked for")
        pixels = await pipe.read(width * height * screen.bytes_per_pixel)
        rectangles.append(Rectangle(x, y, width, height, encoding, pixels))
    return rectangles


async def key(pipe: Pipe, keysym: int) -> None:
    """Press and release one key."""
    await pipe.write(struct.pack(">BBxxI", 4, 1, keysym) + struct.pack(">BBxxI", 4, 0, keysym))
