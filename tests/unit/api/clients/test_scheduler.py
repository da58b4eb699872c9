"""services/api/clients/scheduler.py: what a failed placement answers."""

from __future__ import annotations

import grpc

from services.api.clients.scheduler import UNREACHABLE_RETRY, placement_error
from services.common import errors


def answered(error: errors.SfmeshError) -> grpc.aio.AioRpcError:
    """The AioRpcError the api sees when the scheduler raised `error`."""
    status = errors.to_status(error)
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details=status.details,
    )


def test_an_unreachable_scheduler_is_a_503_with_a_retry_hint() -> None:
    plain = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="refused"
    )
    error = placement_error(plain)
    assert isinstance(error, errors.Unavailable)
    assert (error.reason, error.retry_after) == ("SCHEDULER_UNAVAILABLE", UNREACHABLE_RETRY)


def test_the_schedulers_own_answers_pass_through() -> None:
    waiting = placement_error(answered(errors.Unavailable("waiting", retry_after=5)))
    assert isinstance(waiting, errors.Unavailable) and waiting.retry_after == 5
    full = placement_error(answered(errors.InsufficientResources("full", retry_after=5)))
    assert isinstance(full, errors.InsufficientResources) and full.retry_after == 5
