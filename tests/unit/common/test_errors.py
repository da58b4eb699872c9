"""services/common/errors.py: every domain error renders as one rich status."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.common import errors

DETAILS_KEY = "grpc-status-details-bin"

# (class, gRPC code, HTTP status, default reason)
TABLE = [
    (errors.SfmeshError, grpc.StatusCode.INTERNAL, 500, "INTERNAL"),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, 400, "INVALID_ARGUMENT"),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, 401, "UNAUTHENTICATED"),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, 403, "PERMISSION_DENIED"),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND, 404, "NOT_FOUND"),
    (errors.NotReady, grpc.StatusCode.FAILED_PRECONDITION, 406, "NOT_READY"),
    (errors.Conflict, grpc.StatusCode.FAILED_PRECONDITION, 409, "CONFLICT"),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS, 409, "ALREADY_EXISTS"),
    (
        errors.InsufficientResources,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        507,
        "INSUFFICIENT_RESOURCES",
    ),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE, 503, "UNAVAILABLE"),
]


def rich(status: grpc.Status) -> status_pb2.Status:
    """The google.rpc.Status carried in a grpc.Status's trailing metadata."""
    blobs = [value for key, value in status.trailing_metadata if key == DETAILS_KEY]
    assert len(blobs) == 1
    return status_pb2.Status.FromString(blobs[0])


def unpack_all(details: list[any_pb2.Any]) -> list[object]:
    out: list[object] = []
    for packed in details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                out.append(message)
    assert len(out) == len(details), "a detail of an unexpected type"
    return out


@pytest.mark.parametrize(("cls", "code", "http", "reason"), TABLE)
def test_class_attributes(
    cls: type[errors.SfmeshError], code: grpc.StatusCode, http: int, reason: str
) -> None:
    error = cls("boom")
    assert error.code == code
    assert error.http_status == http
    assert error.reason == reason
    assert error.message == "boom"
    assert str(error) == "boom"
    assert isinstance(error, errors.SfmeshError)


@pytest.mark.parametrize(("cls", "code", "http", "reason"), TABLE)
def test_to_status(
    cls: type[errors.SfmeshError], code: grpc.StatusCode, http: int, reason: str
) -> None:
    status = errors.to_status(cls("something went wrong"))
    assert status.code == code
    assert status.details == "something went wrong"
    decoded = rich(status)
    assert decoded.code == getattr(code_pb2, code.name) == code.value[0]
    assert decoded.message == "something went wrong"
    info = unpack_all(list(decoded.details))[0]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.domain == "sfmesh"
    assert info.reason == reason
    assert dict(info.metadata) == {"http_status": str(http)}


def test_reason_override_keeps_class_default() -> None:
    error = errors.NotFound("namespace not found", reason="NAMESPACE_NOT_FOUND")
    assert error.reason == "NAMESPACE_NOT_FOUND"
    # The override is per instance, never written back to the class.
    assert errors.NotFound.reason == "NOT_FOUND"
    assert errors.NotFound("x").reason == "NOT_FOUND"
    info = unpack_all(list(rich(errors.to_status(error)).details))[0]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "NAMESPACE_NOT_FOUND"


def test_only_capacity_errors_carry_retry_info() -> None:
    for cls, *_ in TABLE:
        if cls is errors.InsufficientResources:
            continue
        details = unpack_all(list(rich(errors.to_status(cls("x"))).details))
        assert [type(d) for d in details] == [error_details_pb2.ErrorInfo], cls


def test_retry_info_default_and_custom_delay() -> None:
    default = unpack_all(list(rich(errors.to_status(errors.InsufficientResources("full"))).details))
    assert [type(d) for d in default] == [error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo]
    retry = default[1]
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.seconds == 5

    custom = errors.InsufficientResources("full", reason="NO_NODE", retry_after=30)
    details = unpack_all(list(rich(errors.to_status(custom)).details))
    info, retry = details
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert info.reason == "NO_NODE"
    assert dict(info.metadata) == {"http_status": "507"}
    assert retry.retry_delay.seconds == 30


def test_a_short_message_is_kept_whole() -> None:
    assert errors.InvalidArgument("x" * errors.MESSAGE_BYTES).message == "x" * errors.MESSAGE_BYTES


@pytest.mark.parametrize("echoed", ["a" * 100_000, "é" * 100_000, "😀" * 30_000])
def test_a_long_echo_is_cut_in_the_middle(echoed: str) -> None:
    """Start and end survive; the whole fits gRPC's metadata twice over."""
    error = errors.InvalidArgument(f"instance name {echoed} is not useable as a DNS name")
    assert len(error.message.encode()) <= errors.MESSAGE_BYTES
    assert error.message.startswith("instance name ")
    assert error.message.endswith(" is not useable as a DNS name")
    assert "characters cut]" in error.message
    assert str(error) == error.message
    status = errors.to_status(error, request_id="r1")
    assert status.details == error.message
    assert sum(len(key) + len(value) for key, value in status.trailing_metadata) < 4096
