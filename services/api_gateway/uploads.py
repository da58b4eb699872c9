"""Forwarding a raw request body into a client-streaming RPC, in bounded memory.

A route whose body field is a `google.api.HttpBody` on a client-streaming RPC
takes its request body as bytes: the body goes up in messages of at most
`CHUNK` bytes, the first carrying the fields from the path, the query and the
headers (and the body's `Content-Type`), every one carrying a chunk in the
body field. The gateway holds at most one chunk, and waits for the upstream
to take each (gRPC flow control), so a body of any size flows through.

Each message is written in protobuf's wire format by hand: the other
fields' bytes (once), then the body field around the chunk, so a chunk is
copied once on its way and never parsed. A
client that leaves cancels the call; an upstream that fails stops the
reading, and its error is the answer (the connection then closes, the rest
of the body unread).

An upstream may refuse an upload before its stream ends (a bad token, an
unknown upload): the gateway then stops sending, and the upstream's status is
the answer.
"""

from __future__ import annotations

from google.protobuf.message import Message

from services.api_gateway.errors import GatewayError
from services.api_gateway.responses import ClientGone
from services.api_gateway.routes import Route
from services.api_gateway.types import Receive
from services.api_gateway.upstream import ClientStream

CHUNK = 1024 * 1024
"""The largest chunk of the body in one message, bytes."""
_LENGTH_DELIMITED = 2
_CONTENT_TYPE = 1
"""`google.api.HttpBody.content_type`'s field number."""
_DATA = 2
"""`google.api.HttpBody.data`'s field number."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_head(number: int, length: int) -> bytes:
    """The tag and length of a length-delimited field."""
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(length)


def body_message(
    field: int, data: bytes | memoryview, prefix: bytes = b"", content_type: str = ""
) -> bytes:
    """A request message's bytes: `prefix` (its other fields, serialized),
    then the HttpBody field `field` holding `content_type` and `data`."""
    kind = content_type.encode()
    body_head = _field_head(_CONTENT_TYPE, len(kind)) + kind if kind else b""
    if data:  # as protobuf writes it: an empty field is left out
        body_head += _field_head(_DATA, len(data))
    head = prefix + _field_head(field, len(body_head) + len(data)) + body_head
    return b"".join((head, data))


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
    field = route.method.input_type.fields_by_name[route.body].number
    messages = 0

    async def write(data: bytes | memoryview) -> bool:
        nonlocal messages
        if messages == 0:
            message = body_message(field, data, first.SerializeToString(), content_type)
        else:
            message = body_message(field, data)
        messages += 1
        return await call.write(message)

    pending: list[bytes | memoryview] = []
    held = size = 0
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
            pending.append(chunk)
            held += len(chunk)
            while open_ and held >= CHUNK:
                whole = memoryview(b"".join(pending))
                open_ = await write(whole[:CHUNK])
                pending = [whole[CHUNK:]]
                held -= CHUNK
        if open_ and (held or messages == 0):
            await write(b"".join(pending))
    except BaseException:
        call.cancel()
        raise
    return await call.finish()
