"""Forwarding a server-streaming RPC as NDJSON or Server-Sent Events.

NDJSON (default): one `{"result": <message>}` line per message, flushed as it
arrives, and a final `{"error": {"code", "message", "details", "status"}}`
line if the call fails after the response started.

SSE (`Accept: text/event-stream`): `event: result` / `event: error` with
`data: <json>`, and a `: ping` comment after each `sse_ping` seconds of
silence.

The 200 header goes out with the first message, or after `start_wait`
seconds of silence; a failure before that (bad token, unknown instance) is
answered as an ordinary error response with its own HTTP status. A client
disconnect or a gateway shutdown cancels the upstream call.

A stream of `google.api.HttpBody` (`forward_raw`) is written raw instead:
the bytes of every message, chunked, with the first message's content type,
and the status and headers its initial metadata asks for
(`headers.response_head`: 206 with `Content-Range`, say). A failure before
the first message is an ordinary error response; after it, the connection
closes before the body's end, so the client sees a cut body, never a short
one that passes for whole.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message

from services.api_gateway import marshal
from services.api_gateway.errors import ErrorReply, reply_from_status
from services.api_gateway.headers import response_head
from services.api_gateway.responses import (
    ClientGone,
    Headers,
    cancel_all,
    send_error,
    wait_disconnect,
)
from services.api_gateway.types import Receive, Send


@dataclass(frozen=True)
class StreamSettings:
    """How one stream is framed and paced."""

    sse: bool
    response_body: str
    sse_ping: float
    start_wait: float


def _frame_result(message: Message, settings: StreamSettings) -> bytes:
    value = marshal.to_json_value(message, settings.response_body)
    if settings.sse:
        return b"event: result\ndata: " + orjson.dumps(value) + b"\n\n"
    return orjson.dumps({"result": value}) + b"\n"


def _frame_error(reply: ErrorReply, settings: StreamSettings) -> bytes:
    line = reply.stream_line()
    if settings.sse:
        return b"event: error\ndata: " + orjson.dumps(line["error"]) + b"\n\n"
    return orjson.dumps(line) + b"\n"


def _reply(exc: grpc.aio.AioRpcError, pool: DescriptorPool | None) -> ErrorReply:
    return reply_from_status(exc.code(), exc.details() or "", exc.trailing_metadata(), pool)


async def forward_stream(
    call: grpc.aio.UnaryStreamCall,
    *,
    receive: Receive,
    send: Send,
    headers: Headers,
    settings: StreamSettings,
    stop: asyncio.Event,
    pool: DescriptorPool | None,
) -> None:
    """Relay `call` to the HTTP client until it ends, fails, or someone goes away."""
    gone = asyncio.ensure_future(wait_disconnect(receive))
    stopping = asyncio.ensure_future(stop.wait())
    read: asyncio.Future[Any] = asyncio.ensure_future(call.read())
    try:
        done, _ = await asyncio.wait(
            {read, gone, stopping}, timeout=settings.start_wait, return_when="FIRST_COMPLETED"
        )
        if gone in done or stopping in done:
            return
        if read in done and isinstance(read.exception(), grpc.aio.AioRpcError):
            error = read.exception()
            assert isinstance(error, grpc.aio.AioRpcError)  # narrowed for mypy
            await send_error(send, _reply(error, pool), headers, gzip_ok=False)
            return
        content_type = b"text/event-stream" if settings.sse else b"application/x-ndjson"
        start_headers = [*headers, (b"content-type", content_type), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        await _relay(call, read, gone, stopping, send, settings, pool)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        call.cancel()
        cancel_all(gone, stopping, read)


class StreamCut(Exception):
    """A raw stream failed after its response started: the body must not end cleanly."""


async def forward_raw(
    call: grpc.aio.UnaryStreamCall,
    *,
    receive: Receive,
    send: Send,
    headers: Headers,
    stop: asyncio.Event,
    pool: DescriptorPool | None,
) -> None:
    """Relay a stream of `HttpBody` as one raw body. Raises StreamCut when
    the stream fails after the response started."""
    gone = asyncio.ensure_future(wait_disconnect(receive))
    stopping = asyncio.ensure_future(stop.wait())
    read: asyncio.Future[Any] = asyncio.ensure_future(call.read())
    try:
        done, _ = await asyncio.wait({read, gone, stopping}, return_when="FIRST_COMPLETED")
        if read not in done:
            return
        error = read.exception()
        if isinstance(error, grpc.aio.AioRpcError):
            await send_error(send, _reply(error, pool), headers, gzip_ok=False)
            return
        message = read.result()
        status, extra = response_head(await call.initial_metadata())
        content_type = b"application/octet-stream"
        if message is not grpc.aio.EOF and message.content_type:
            content_type = message.content_type.encode("latin-1")
        start = [*headers, *extra, (b"content-type", content_type)]
        await send({"type": "http.response.start", "status": status, "headers": start})
        while message is not grpc.aio.EOF:
            if message.data:
                await _chunk(send, message.data)
            read = asyncio.ensure_future(call.read())
            done, _ = await asyncio.wait({read, gone, stopping}, return_when="FIRST_COMPLETED")
            if gone in done:
                raise ClientGone
            if read not in done:
                raise StreamCut("the gateway is stopping")
            if isinstance(read.exception(), grpc.aio.AioRpcError):
                raise StreamCut(str(read.exception()))
            message = read.result()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        call.cancel()
        cancel_all(gone, stopping, read)


async def _relay(
    call: grpc.aio.UnaryStreamCall,
    read: asyncio.Future[Any],
    gone: asyncio.Future[Any],
    stopping: asyncio.Future[Any],
    send: Send,
    settings: StreamSettings,
    pool: DescriptorPool | None,
) -> None:
    idle = settings.sse_ping if settings.sse else None
    try:
        while True:
            if not read.done():
                done, _ = await asyncio.wait(
                    {read, gone, stopping}, timeout=idle, return_when="FIRST_COMPLETED"
                )
                if gone in done or stopping in done:
                    return
                if not done:
                    await _chunk(send, b": ping\n\n")
                    continue
            try:
                message = read.result()
            except grpc.aio.AioRpcError as exc:
                await _chunk(send, _frame_error(_reply(exc, pool), settings))
                return
            except asyncio.CancelledError:
                return
            if message is grpc.aio.EOF:
                return
            await _chunk(send, _frame_result(message, settings))
            read = asyncio.ensure_future(call.read())
    finally:
        cancel_all(read)


async def _chunk(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})
