"""A WebSocket route (`routes.Route.websocket`) bridged to its bidirectional
stream.

The request's path and query make the stream's first message; the
gateway then waits for the upstream's initial metadata, which the upstream
sends once it has accepted the stream (a ticket checked, a console
reached). Only then is the WebSocket accepted (101): a refusal before it
is an ordinary HTTP error answer with its own status (401, 404, 406, 409,
503), so a browser refused never sees an open socket nor a byte.

Once open, each binary frame from the client goes up as one message whose
`response_body` field holds its bytes, and that field of each answer comes
down as one binary frame; a text frame closes the socket (1003). Both ways
wait for the other side to take what was sent (gRPC's flow control up, the
connection's write buffer down), so a slow reader slows its writer and no
buffer grows. The socket closes with 1000 when the stream ends, with 4000 +
the error's HTTP status and its message (cut to 123 bytes) when it fails
(4401 for an expired ticket, 4503 for an outage), with 1001 when the gateway
stops; the call is cancelled when the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
from google.protobuf.descriptor_pool import DescriptorPool

from services.api_gateway import routes
from services.api_gateway.errors import ErrorReply, UpstreamError, reply_from_status
from services.api_gateway.responses import Headers, cancel_all
from services.api_gateway.types import Receive, Send

NORMAL = 1000
GOING_AWAY = 1001
UNSUPPORTED = 1003
APP_CODES = 4000
"""Close codes 4000-4999 are the application's: 4000 + an error's HTTP status."""
SUBPROTOCOL = "binary"
"""The one subprotocol chosen when offered (noVNC's older default)."""


def field_bytes(number: int, data: bytes) -> bytes:
    """A protobuf message holding only `data` in bytes field `number`
    (its wire form: key, length, bytes). Pure."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def close_code(reply: ErrorReply) -> int:
    """The close code of a stream that failed after the socket opened. Pure."""
    return APP_CODES + reply.http_status if 400 <= reply.http_status <= 599 else 1011


def chosen_subprotocol(offered: list[str]) -> str | None:
    """The subprotocol to answer among those the client offered. Pure."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


async def open_stream(call: Any, first: bytes, pool: DescriptorPool | None) -> None:
    """Send the first message and wait until the upstream accepts the
    stream (its initial metadata); raise UpstreamError when it refuses."""
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        await call.write(first)
    await call.initial_metadata()
    if call.done():
        code = await call.code()
        if code != grpc.StatusCode.OK:
            raise UpstreamError(
                reply_from_status(
                    code, await call.details() or "", await call.trailing_metadata(), pool
                )
            )


async def bridge(
    call: Any,
    route: routes.Route,
    *,
    receive: Receive,
    send: Send,
    headers: Headers,
    subprotocol: str | None,
    stop: asyncio.Event,
    pool: DescriptorPool | None,
) -> None:
    """Accept the WebSocket and carry bytes both ways until one side ends."""
    field = route.response_body
    number = route.method.input_type.fields_by_name[field].number
    await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers})
    up = asyncio.ensure_future(_up(call, number, receive, send))
    down = asyncio.ensure_future(_down(call, field, send))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({up, down, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.done():
            await send({"type": "websocket.close", "code": GOING_AWAY, "reason": "gateway stops"})
        elif down.done() or up.result():
            await _closed(call, down, send, pool)
    finally:
        cancel_all(up, down, stopping)
        call.cancel()


async def _up(call: Any, number: int, receive: Receive, send: Send) -> bool:
    """Client frames up, until the client leaves (False) or sends text
    (True: closed here, the stream's end still to be told)."""
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return False
        data = message.get("bytes")
        if data is None:
            await send(
                {"type": "websocket.close", "code": UNSUPPORTED, "reason": "binary frames only"}
            )
            return False
        try:
            await call.write(field_bytes(number, data))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return True  # the stream ended: `_down` tells how


async def _down(call: Any, field: str, send: Send) -> None:
    """Answers down, as binary frames, until the stream ends."""
    with contextlib.suppress(grpc.aio.AioRpcError):
        async for reply in call:
            await send({"type": "websocket.send", "bytes": getattr(reply, field)})


async def _closed(call: Any, down: asyncio.Future[None], send: Send, pool: Any) -> None:
    """Close the socket as the stream ended: 1000, or 4000 + its HTTP status."""
    await down
    code = await call.code()
    if code == grpc.StatusCode.OK:
        await send({"type": "websocket.close", "code": NORMAL, "reason": "stream ended"})
        return
    details = await call.details() or ""
    reply = reply_from_status(code, details, await call.trailing_metadata(), pool)
    await send({"type": "websocket.close", "code": close_code(reply), "reason": reply.message})
