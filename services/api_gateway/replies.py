"""A unary RPC's reply bytes -> the body and content type of the HTTP answer.

`google.api.HttpBody` replies are answered raw, as grpc-gateway does; any
other reply is rendered as JSON (see `marshal`). Rendering is a pure function
of the route and the reply's bytes, so the JSON of small replies is kept in a
bounded memo: a client polling an unchanged instance costs one dictionary
lookup instead of a parse and a render.
"""

from __future__ import annotations

from google.protobuf import message_factory

from services.api_gateway import marshal, openapi
from services.api_gateway.memo import Memo
from services.api_gateway.routes import Route

JSON = b"application/json"
MEMO_ENTRIES = 256
"""Rendered replies kept."""
MEMO_LARGEST = 16 * 1024
"""Replies above this many bytes are rendered every time."""


class Replies:
    """Renders unary replies, remembering the JSON of recent small ones."""

    def __init__(self) -> None:
        self._rendered: Memo[tuple[str, str, bytes], bytes] = Memo(MEMO_ENTRIES)

    def answer(self, route: Route, reply: bytes) -> tuple[bytes, bytes]:
        """(body, content type) of the HTTP answer to `reply`."""
        if route.raw_reply:
            output = route.method.output_type
            message = message_factory.GetMessageClass(output).FromString(reply)
            content_type: str = message.content_type or openapi.OCTETS  # type: ignore[attr-defined]
            return message.data, content_type.encode("latin-1")  # type: ignore[attr-defined]
        if len(reply) > MEMO_LARGEST:
            return _render(route, reply), JSON
        key = (route.rpc_path, route.response_body, reply)
        body = self._rendered.get(key)
        if body is None:
            body = _render(route, reply)
            self._rendered.put(key, body)
        return body, JSON


def _render(route: Route, reply: bytes) -> bytes:
    message = message_factory.GetMessageClass(route.method.output_type).FromString(reply)
    return marshal.to_json_bytes(message, route.response_body)
