"""Errors answered by another sfmesh service come back as the same error."""

from __future__ import annotations

import grpc
import pytest

from services.common import errors


def answered(error: errors.SfmeshError) -> grpc.aio.AioRpcError:
    """The AioRpcError a caller sees when a servicer raised `error`."""
    status = errors.to_status(error, request_id="r1")
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidArgument("bad"),
        errors.NotFound("node not found: n1"),
        errors.NotReady("instance x is not ready (initial)"),
        errors.Conflict("libvirt refused", reason="HYPERVISOR_REFUSED"),
        errors.AlreadyExists("taken"),
        errors.Aborted("raced"),
        errors.Unavailable("etcd away"),
    ],
)
def test_a_domain_error_passes_through_unchanged(error: errors.SfmeshError) -> None:
    rebuilt = errors.from_rpc_error(answered(error), "scheduler")
    assert type(rebuilt) is type(error)
    assert (rebuilt.message, rebuilt.reason) == (error.message, error.reason)


def test_capacity_keeps_its_retry_hint() -> None:
    error = errors.InsufficientResources("No nodes with enough idle RAM", retry_after=7)
    rebuilt = errors.from_rpc_error(answered(error), "scheduler")
    assert isinstance(rebuilt, errors.InsufficientResources)
    assert rebuilt.retry_after == 7


def test_a_503_keeps_its_retry_hint_when_it_has_one() -> None:
    error = errors.Unavailable("nodes not reported", reason="NODES_NOT_REPORTED", retry_after=5)
    rebuilt = errors.from_rpc_error(answered(error), "scheduler")
    assert isinstance(rebuilt, errors.Unavailable)
    assert (rebuilt.reason, rebuilt.retry_after) == ("NODES_NOT_REPORTED", 5)
    plain = errors.from_rpc_error(answered(errors.Unavailable("etcd away")), "scheduler")
    assert isinstance(plain, errors.Unavailable) and plain.retry_after is None


def test_anything_else_means_the_service_is_unavailable() -> None:
    plain = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="refused"
    )
    rebuilt = errors.from_rpc_error(plain, "node agent")
    assert isinstance(rebuilt, errors.Unavailable)
    assert rebuilt.message == "the node agent is unavailable (UNAVAILABLE)"
    assert rebuilt.reason == "NODE_AGENT_UNAVAILABLE"
