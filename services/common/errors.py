"""The domain errors every service raises, and their one mapping to gRPC.

Each error knows its gRPC code, the HTTP status the gateway should answer and a
machine-readable reason. `to_status` turns one into a `grpc.Status` carrying a
`google.rpc.ErrorInfo` (domain "sfmesh", the reason, `metadata["http_status"]`)
and, for capacity errors and a 503 with a hint, a `google.rpc.RetryInfo`.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "sfmesh"
MESSAGE_BYTES = 1024
"""The most UTF-8 bytes of an error message. gRPC sends the message twice in
trailing metadata (grpc-message, percent-encoded, and grpc-status-details-bin),
whose size the receiving side caps at 8 KiB: an echoed 100,000-character
name would otherwise turn any refusal into RESOURCE_EXHAUSTED."""


class SfmeshError(Exception):
    """Base of every error a servicer may raise on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    http_status: int = 500
    reason: str = "INTERNAL"

    def __init__(
        self, message: str, *, reason: str | None = None, facts: Mapping[str, str] | None = None
    ) -> None:
        self.message = bounded(message)
        super().__init__(self.message)
        if reason is not None:
            self.reason = reason
        self.facts = dict(facts or {})
        """Machine-readable details, sent in the ErrorInfo's metadata beside
        `http_status` (a node's real upload size, say)."""


def bounded(message: str) -> str:
    """`message` cut to `MESSAGE_BYTES`: its start and end kept (where a
    message says what is wrong), the middle (usually an echoed value)
    replaced by how much was cut. Pure."""
    encoded = message.encode()
    if len(encoded) <= MESSAGE_BYTES:
        return message
    half = (MESSAGE_BYTES - 40) // 2  # room for the marker
    head = encoded[:half].decode(errors="ignore")
    tail = encoded[-half:].decode(errors="ignore")
    cut = len(message) - len(head) - len(tail)
    return f"{head}…[{cut} characters cut]…{tail}"


class InvalidArgument(SfmeshError):
    """The request is malformed or breaks a validation rule (400)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400
    reason = "INVALID_ARGUMENT"


class Unauthenticated(SfmeshError):
    """No valid credentials (401)."""

    code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401
    reason = "UNAUTHENTICATED"


class PermissionDenied(SfmeshError):
    """Authenticated, but this caller may not do this (403)."""

    code = grpc.StatusCode.PERMISSION_DENIED
    http_status = 403
    reason = "PERMISSION_DENIED"


class NotFound(SfmeshError):
    """The object does not exist or is not visible to the caller (404)."""

    code = grpc.StatusCode.NOT_FOUND
    http_status = 404
    reason = "NOT_FOUND"


class NotReady(SfmeshError):
    """Something the request depends on is not ready yet; retry later (406)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 406
    reason = "NOT_READY"


class Conflict(SfmeshError):
    """The object's state forbids the operation (409)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 409
    reason = "CONFLICT"


class AlreadyExists(SfmeshError):
    """The thing asked for is already taken (409)."""

    code = grpc.StatusCode.ALREADY_EXISTS
    http_status = 409
    reason = "ALREADY_EXISTS"


class Aborted(SfmeshError):
    """The operation was cut short by a concurrent change; start it again (409)."""

    code = grpc.StatusCode.ABORTED
    http_status = 409
    reason = "ABORTED"


class RangeNotSatisfiable(SfmeshError):
    """A byte range asked of a body lies wholly past its end (416)."""

    code = grpc.StatusCode.OUT_OF_RANGE
    http_status = 416
    reason = "RANGE_NOT_SATISFIABLE"


class InsufficientResources(SfmeshError):
    """No capacity now (507); `retry_after` seconds is a hint."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 507
    reason = "INSUFFICIENT_RESOURCES"

    def __init__(self, message: str, *, reason: str | None = None, retry_after: int = 5) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class Unavailable(SfmeshError):
    """A dependency (etcd, another service) cannot be reached, or is not
    ready (503); `retry_after` seconds, when given, is a hint."""

    code = grpc.StatusCode.UNAVAILABLE
    http_status = 503
    reason = "UNAVAILABLE"

    def __init__(
        self, message: str, *, reason: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


def to_status(error: SfmeshError, *, request_id: str = "") -> grpc.Status:
    """Render a domain error as a rich gRPC status, echoing `request_id`."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason,
        domain=DOMAIN,
        metadata={**error.facts, "http_status": str(error.http_status)},
    )
    details = [_pack(info)]
    if isinstance(error, InsufficientResources | Unavailable) and error.retry_after is not None:
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=error.retry_after)
        )
        details.append(_pack(retry))
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name),
        message=error.message,
        details=details,
    )
    rich = rpc_status.to_status(status)
    if not request_id:
        return rich
    return _Status(rich.code, rich.details, (*rich.trailing_metadata, ("x-request-id", request_id)))


class _Status(grpc.Status):
    """A status with extra trailing metadata beside the rich details."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


_BY_STATUS: dict[tuple[grpc.StatusCode, int], type[SfmeshError]] = {
    (kind.code, kind.http_status): kind
    for kind in (
        InvalidArgument,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        NotReady,
        Conflict,
        AlreadyExists,
        Aborted,
        RangeNotSatisfiable,
        InsufficientResources,
        Unavailable,
    )
}


def from_rpc_error(exc: grpc.aio.AioRpcError, service: str) -> SfmeshError:
    """Rebuild the domain error another sfmesh service answered, so a caller
    passes it on unchanged; anything else means `service` is unavailable."""
    info, retry = _rich_details(exc)
    status = int(info.metadata.get("http_status", 0)) if info else 0
    kind = _BY_STATUS.get((exc.code(), status))
    message = exc.details() or ""
    if info is None or kind is None:
        return Unavailable(
            f"the {service} is unavailable ({exc.code().name})",
            reason=f"{service.upper().replace(' ', '_')}_UNAVAILABLE",
        )
    if kind is InsufficientResources:
        seconds = retry.retry_delay.seconds if retry else 5
        return InsufficientResources(message, reason=info.reason, retry_after=seconds)
    if kind is Unavailable:
        hint = retry.retry_delay.seconds if retry else None
        return Unavailable(message, reason=info.reason, retry_after=hint)
    return kind(message, reason=info.reason)


def _rich_details(
    exc: grpc.aio.AioRpcError,
) -> tuple[error_details_pb2.ErrorInfo | None, error_details_pb2.RetryInfo | None]:
    status = status_pb2.Status()
    for name, value in exc.trailing_metadata() or ():
        if name == "grpc-status-details-bin" and isinstance(value, bytes):
            status.ParseFromString(value)
    info = retry = None
    for packed in status.details:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            if info.domain != DOMAIN:
                info = None
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            packed.Unpack(retry)
    return info, retry


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
