"""gRPC status -> HTTP error replies."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.api_gateway.errors import (
    DETAILS_KEY,
    GatewayError,
    http_status_from_code,
    reply_from_status,
)


def _trailer(code: int, message: str, *details: object) -> list[tuple[str, bytes]]:
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)  # type: ignore[arg-type]
        packed.append(item)
    status = status_pb2.Status(code=code, message=message, details=packed)
    return [(DETAILS_KEY, status.SerializeToString())]


def test_code_table() -> None:
    expected = {
        grpc.StatusCode.OK: 200,
        grpc.StatusCode.CANCELLED: 499,
        grpc.StatusCode.UNKNOWN: 500,
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.FAILED_PRECONDITION: 400,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.INTERNAL: 500,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DATA_LOSS: 500,
    }
    assert {code: http_status_from_code(code) for code in expected} == expected


def test_plain_status_uses_the_table() -> None:
    reply = reply_from_status(grpc.StatusCode.NOT_FOUND, "instance not found", None)
    assert reply.http_status == 404
    assert reply.body() == {
        "error": "instance not found",
        "status": 404,
        "code": 5,
        "message": "instance not found",
        "details": [],
    }
    assert reply.headers == []


def test_error_info_http_status_wins() -> None:
    info = error_details_pb2.ErrorInfo(
        reason="NOT_READY", domain="sfmesh", metadata={"http_status": "406"}
    )
    trailer = _trailer(code_pb2.FAILED_PRECONDITION, "not ready", info)
    reply = reply_from_status(grpc.StatusCode.FAILED_PRECONDITION, "not ready", trailer)
    assert reply.http_status == 406
    assert reply.body()["code"] == 9
    assert reply.details == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "NOT_READY",
            "domain": "sfmesh",
            "metadata": {"http_status": "406"},
        }
    ]


def test_retry_info_sets_retry_after_rounded_up() -> None:
    info = error_details_pb2.ErrorInfo(reason="X", metadata={"http_status": "507"})
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=1))
    trailer = _trailer(code_pb2.RESOURCE_EXHAUSTED, "full", info, retry)
    reply = reply_from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "full", trailer)
    assert reply.http_status == 507
    assert ("retry-after", "3") in reply.headers
    assert reply.details[1]["retry_delay"] == "2.000000001s"


def test_a_503_without_a_delay_gets_retry_after_one_second() -> None:
    # An unreachable api: the channel fails with a bare UNAVAILABLE.
    bare = reply_from_status(grpc.StatusCode.UNAVAILABLE, "connection refused", [])
    assert bare.http_status == 503
    assert bare.headers == [("retry-after", "1")]
    starting = GatewayError(503, "the gateway is starting", code=grpc.StatusCode.UNAVAILABLE)
    assert starting.reply().headers == [("retry-after", "1")]
    # A delay the service gave is kept, not doubled.
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=5))
    trailer = _trailer(code_pb2.UNAVAILABLE, "wait", retry)
    given = reply_from_status(grpc.StatusCode.UNAVAILABLE, "wait", trailer)
    assert given.headers == [("retry-after", "5")]


def test_unauthenticated_adds_www_authenticate() -> None:
    reply = reply_from_status(grpc.StatusCode.UNAUTHENTICATED, "bad token", [])
    assert reply.http_status == 401
    assert ("www-authenticate", "Bearer") in reply.headers


def test_corrupt_trailer_falls_back_to_table() -> None:
    reply = reply_from_status(grpc.StatusCode.INTERNAL, "boom", [(DETAILS_KEY, b"\xff\xff")])
    assert reply.http_status == 500 and reply.details == []


def test_stream_line_shape() -> None:
    reply = reply_from_status(grpc.StatusCode.UNAVAILABLE, "gone", None)
    assert reply.stream_line() == {
        "error": {"code": 14, "message": "gone", "details": [], "status": 503}
    }


def test_gateway_errors_share_the_shape() -> None:
    error = GatewayError(405, "no", code=grpc.StatusCode.UNIMPLEMENTED, headers=[("allow", "GET")])
    reply = error.reply()
    assert reply.body()["status"] == 405 and reply.body()["code"] == 12
    assert reply.headers == [("allow", "GET")]
