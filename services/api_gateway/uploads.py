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

An upstream may refuse an upload before its stream ends (a bad token, an
unknown upload): the gateway then stops sending, and the upstream's status is
the answer.
"""

from __future__ import annotations

from google.protobuf import message_factory
from google.protobuf.message import Message

from services.api_gateway.errors import GatewayError
from services.api_gateway.responses import ClientGone
from services.api_gateway.routes import Route
from services.api_gateway.types import Receive
from services.api_gateway.upstream import ClientStream

CHUNK = 256 * 1024
"""The largest chunk of the body in one message, bytes."""


async def forward_upload(
    call: ClientStream,
    route: Route,
    first: Message,
    content_type: str,
    *,
    receive: Receive,
    limit: int,
) -> bytes:
    """Stream the request body into `call` after `first` (the request's other
    fields); the reply's bytes. Raises GatewayError (413 past `limit`
    bytes), UpstreamError or ClientGone."""
    make = message_factory.GetMessageClass(route.method.input_type)
    messages = 0

    async def write(data: bytes) -> bool:
        nonlocal messages
        message = first if messages == 0 else make()
        body = getattr(message, route.body)
        if messages == 0:
            body.content_type = content_type
        body.data = data
        messages += 1
        return await call.write(message.SerializeToString())

    pending = bytearray()
    size = 0
    try:
        more = open_ = True
        while more and open_:
            event = await receive()
            if event["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = event.get("body", b"")
            more = bool(event.get("more_body", False))
            size += len(chunk)
            if size > limit:
                raise GatewayError(413, "request body is too large")
            pending += chunk
            while open_ and len(pending) >= CHUNK:
                open_ = await write(bytes(pending[:CHUNK]))
                del pending[:CHUNK]
        if open_ and (pending or messages == 0):
            await write(bytes(pending))
    except BaseException:
        call.cancel()
        raise
    return await call.finish()
