"""gRPC status -> HTTP error response, in one place. Pure.

The HTTP status comes from grpc-gateway's `HTTPStatusFromCode` table unless
the status carries rich details (`grpc-status-details-bin`, a
`google.rpc.Status`) holding a `google.rpc.ErrorInfo` whose
`metadata["http_status"]` names the status to answer: services know their
domain (406 "not ready", 507 "no capacity") and the table cannot.

Body: `{"error": msg, "status": http, "code": grpc_code, "message": msg,
"details": [...]}`, each detail rendered with its `"@type"`. A 401 adds
`WWW-Authenticate: Bearer`; a `google.rpc.RetryInfo` adds `Retry-After`.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.descriptor_pool import DescriptorPool
from google.rpc import error_details_pb2, status_pb2

from services.api_gateway import marshal

DETAILS_KEY = "grpc-status-details-bin"

# grpc-gateway runtime/errors.go HTTPStatusFromCode. Surprises, on purpose:
# CANCELLED is nginx's 499, FAILED_PRECONDITION is 400 (not 412).
HTTP_STATUS_FROM_CODE: dict[grpc.StatusCode, int] = {
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


UNAVAILABLE_RETRY_AFTER = "1"
"""Retry-After of a 503 that names no delay: an outage of the upstream (a
restart takes about a second), not a refusal."""


def retry_after_default(http_status: int, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers`, with `Retry-After` added to a 503 that has none. Pure."""
    if http_status == 503 and not any(name == "retry-after" for name, _ in headers):
        return [*headers, ("retry-after", UNAVAILABLE_RETRY_AFTER)]
    return headers


def http_status_from_code(code: grpc.StatusCode) -> int:
    """The default HTTP status of a gRPC code (500 for anything unknown)."""
    return HTTP_STATUS_FROM_CODE.get(code, 500)


@dataclass(frozen=True)
class ErrorReply:
    """An error ready to write: status, JSON body fields and extra headers."""

    http_status: int
    code: grpc.StatusCode
    message: str
    details: list[Any] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The JSON object of a unary error response."""
        return {
            "error": self.message,
            "status": self.http_status,
            "code": self.code.value[0],
            "message": self.message,
            "details": self.details,
        }

    def stream_line(self) -> dict[str, Any]:
        """The final `{"error": {...}}` object of a failed stream."""
        return {
            "error": {
                "code": self.code.value[0],
                "message": self.message,
                "details": self.details,
                "status": self.http_status,
            }
        }


class GatewayError(Exception):
    """An error the gateway itself answers (bad body, no route, ...)."""

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.code = code
        self.headers = list(headers)

    def reply(self) -> ErrorReply:
        """This error as a reply."""
        headers = retry_after_default(self.http_status, self.headers)
        return ErrorReply(self.http_status, self.code, self.message, [], headers)


class UpstreamError(Exception):
    """An upstream call failed; carries the reply already translated."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply


def reply_from_status(
    code: grpc.StatusCode,
    message: str,
    trailing_metadata: Sequence[tuple[str, str | bytes]] | None,
    pool: DescriptorPool | None = None,
) -> ErrorReply:
    """Translate a failed call's code, message and trailers into a reply."""
    http_status = http_status_from_code(code)
    headers: list[tuple[str, str]] = []
    details: list[Any] = []
    rich = _rich_status(trailing_metadata)
    if rich is not None:
        for detail in rich.details:
            details.append(_detail_json(detail, pool))
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                override = info.metadata.get("http_status", "")
                if override.isascii() and override.isdigit() and 100 <= int(override) <= 599:
                    http_status = int(override)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
                headers.append(("retry-after", str(max(0, math.ceil(delay)))))
    if http_status == 401:
        headers.append(("www-authenticate", "Bearer"))
    return ErrorReply(
        http_status, code, message, details, retry_after_default(http_status, headers)
    )


def _rich_status(
    trailing_metadata: Sequence[tuple[str, str | bytes]] | None,
) -> status_pb2.Status | None:
    for key, value in trailing_metadata or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a corrupt trailer must not hide the error itself
                return None
    return None


def _detail_json(detail: AnyProto, pool: DescriptorPool | None) -> dict[str, Any]:
    type_name = detail.type_url.rpartition("/")[2]
    for candidate in (pool, descriptor_pool.Default()):
        if candidate is None:
            continue
        try:
            descriptor = candidate.FindMessageTypeByName(type_name)
        except KeyError:
            continue
        message = message_factory.GetMessageClass(descriptor).FromString(detail.value)
        rendered = marshal.to_json_value(message)
        body = rendered if isinstance(rendered, dict) else {"value": rendered}
        return {"@type": detail.type_url, **body}
    return {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode("ascii")}
