"""Forwarding a raw request body into a client-streaming RPC, in bounded memory.

A route whose body field is a `google.api.HttpBody` on a client-streaming RPC
takes its request body as bytes: the body goes up in messages of at most
`CHUNK` bytes, the first carrying the fields from the path, the query and the
headers (and the body's `Content-Type`), every one carrying a chunk in the
body field. The gateway holds at most one chunk, and waits for the upstream
to take each (gRPC flow control), so a body of any size flows through. A
client that leaves cancels the call; an upstream that fails stops the
reading, and its error is the answer (the connection then closes, the rest
of the body unread).

An upstream should refuse an upload only once it has read the whole stream:
one that ends the call early races the gateway's next write, and grpc's
client then reports an INTERNAL error of its own instead of the upstream's
status.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message

from services.api_gateway.errors import GatewayError, UpstreamError, reply_from_status
from services.api_gateway.responses import ClientGone
from services.api_gateway.routes import Route
from services.api_gateway.types import Receive

CHUNK = 256 * 1024
"""The largest chunk of the body in one message, bytes."""


async def forward_upload(
    call: Any,
    route: Route,
    first: Message,
    content_type: str,
    *,
    receive: Receive,
    limit: int,
    pool: DescriptorPool | None,
) -> bytes:
    """Stream the request body into `call` after `first` (the request's other
    fields); the reply's bytes. Raises GatewayError (413 past `limit`
    bytes), UpstreamError or ClientGone."""
    make = message_factory.GetMessageClass(route.method.input_type)
    messages = 0

    async def write(data: bytes) -> None:
        nonlocal messages
        message = first if messages == 0 else make()
        body = getattr(message, route.body)
        if messages == 0:
            body.content_type = content_type
        body.data = data
        messages += 1
        await call.write(message.SerializeToString())

    pending = bytearray()
    size = 0
    try:
        more = True
        while more:
            event = await receive()
            if event["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = event.get("body", b"")
            more = bool(event.get("more_body", False))
            size += len(chunk)
            if size > limit:
                raise GatewayError(413, "request body is too large")
            pending += chunk
            while len(pending) >= CHUNK:
                await write(bytes(pending[:CHUNK]))
                del pending[:CHUNK]
        if pending or messages == 0:
            await write(bytes(pending))
        await call.done_writing()
    except asyncio.InvalidStateError:
        pass  # the upstream ended the call before the body did: its answer stands
    except BaseException:
        call.cancel()
        raise
    try:
        return bytes(await call)
    except grpc.aio.AioRpcError as exc:
        reply = reply_from_status(exc.code(), exc.details() or "", exc.trailing_metadata(), pool)
        raise UpstreamError(reply) from None
