"""The WebSocket handshake's pure parts (`ws_exchange.py`) and the bridge's
framing (`ws_bridge.py`)."""

from __future__ import annotations

import base64

import grpc
from sfmesh.v1 import instance_service_pb2

from services.api_gateway.errors import ErrorReply
from services.api_gateway.ws_bridge import chosen_subprotocol, close_code, field_bytes
from services.api_gateway.ws_exchange import (
    accept_head,
    handshake_problem,
    offered_subprotocols,
    wants_websocket,
)

KEY = base64.b64encode(b"0123456789abcdef")
HANDSHAKE = [
    (b"host", b"gw"),
    (b"upgrade", b"WebSocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-key", KEY),
]


def test_an_upgrade_is_a_get_with_upgrade_websocket_and_connection_upgrade() -> None:
    assert wants_websocket("GET", HANDSHAKE)
    assert not wants_websocket("POST", HANDSHAKE)
    assert not wants_websocket("GET", [h for h in HANDSHAKE if h[0] != b"connection"])
    assert not wants_websocket("GET", [(b"upgrade", b"h2c"), (b"connection", b"upgrade")])


def test_the_handshake_needs_version_13_and_a_16_byte_key() -> None:
    assert handshake_problem(HANDSHAKE) is None
    old = [h for h in HANDSHAKE if h[0] != b"sec-websocket-version"] + [
        (b"sec-websocket-version", b"8")
    ]
    assert handshake_problem(old) == "Sec-WebSocket-Version must be 13"
    for key in (b"", b"not base64!", base64.b64encode(b"short")):
        bad = [h for h in HANDSHAKE if h[0] != b"sec-websocket-key"] + [(b"sec-websocket-key", key)]
        assert handshake_problem(bad) == "Sec-WebSocket-Key must be 16 bytes in base64"


def test_the_accept_head_answers_the_key_as_rfc_6455_shows() -> None:
    # RFC 6455 §1.3's example key and answer.
    head = accept_head(b"dGhlIHNhbXBsZSBub25jZQ==", "binary", [(b"x-request-id", b"r1")])
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
    assert b"sec-websocket-protocol: binary\r\n" in head
    assert b"x-request-id: r1\r\n" in head and head.endswith(b"\r\n\r\n")
    assert b"sec-websocket-protocol" not in accept_head(KEY, None, [])


def test_subprotocols_are_read_in_order_and_binary_is_chosen_when_offered() -> None:
    offered = offered_subprotocols([(b"sec-websocket-protocol", b"binary, base64")])
    assert offered == ["binary", "base64"]
    assert chosen_subprotocol(offered) == "binary"
    assert chosen_subprotocol(["base64"]) is None
    assert chosen_subprotocol([]) is None


def test_a_frame_goes_up_as_a_message_holding_only_its_bytes() -> None:
    number = instance_service_pb2.ConsoleStreamRequest.DESCRIPTOR.fields_by_name["data"].number
    for data in (b"", b"\x00\x01", bytes(range(256)) * 700):
        parsed = instance_service_pb2.ConsoleStreamRequest.FromString(field_bytes(number, data))
        assert parsed.data == data and not parsed.ticket and not parsed.instance


def test_a_failed_stream_closes_with_4000_plus_its_http_status() -> None:
    expired = ErrorReply(401, grpc.StatusCode.UNAUTHENTICATED, "console ticket expired")
    assert close_code(expired) == 4401
    assert close_code(ErrorReply(503, grpc.StatusCode.UNAVAILABLE, "down")) == 4503
    assert close_code(ErrorReply(200, grpc.StatusCode.UNKNOWN, "odd")) == 1011
