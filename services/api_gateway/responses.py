"""Writing HTTP responses on an ASGI `send`: JSON, HTML, errors, gzip."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import orjson

from services.api_gateway.errors import ErrorReply
from services.api_gateway.types import Receive, Send

GZIP_MIN_BYTES = 1024
Headers = list[tuple[bytes, bytes]]


class ClientGone(Exception):
    """The HTTP client disconnected before the request was answered."""


def wants_gzip(headers: dict[str, str]) -> bool:
    """Whether the client accepts a gzip-encoded answer."""
    return "gzip" in headers.get("accept-encoding", "").lower()


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: Headers,
    *,
    content_type: bytes = b"application/json",
    gzip_ok: bool = False,
    head_only: bool = False,
) -> None:
    """Send a whole response; gzip it when allowed and worth it."""
    out = [*headers, (b"content-type", content_type)]
    if gzip_ok and len(body) > GZIP_MIN_BYTES:
        body = gzip.compress(body, compresslevel=5)
        out += [(b"content-encoding", b"gzip"), (b"vary", b"accept-encoding")]
    out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


async def send_error(send: Send, reply: ErrorReply, headers: Headers, *, gzip_ok: bool) -> None:
    """Send an error in the one JSON shape."""
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    body = orjson.dumps(reply.body())
    await send_bytes(send, reply.http_status, body, [*headers, *extra], gzip_ok=gzip_ok)


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole request body; None-free; raise ClientGone or OverflowError."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise OverflowError(size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client has gone (after the body was read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def cancel_all(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel whatever is still pending."""
    for task in tasks:
        if task is not None and not task.done():
            task.cancel()
