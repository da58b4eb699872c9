"""services/api/clients/scheduler.py: what a failed placement answers, and
how long it waits for a scheduler election."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from services.api.clients import scheduler as scheduler_client
from services.api.clients.scheduler import UNREACHABLE_RETRY, Scheduler, placement_error
from services.common import errors
from services.common.leaders import Leader


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


class Election:
    """The leader key as a placement reads it: `dead` for `reads` reads,
    then `successor`; it never announces a change (the client polls)."""

    def __init__(self, reads: int) -> None:
        self.reads = reads

    async def read(self) -> Leader:
        self.reads -= 1
        return Leader("dead" if self.reads >= 0 else "successor", 1)

    async def changed(self, since: Leader) -> None:
        await asyncio.Event().wait()


def client(election: Election) -> Scheduler:
    scheduler = Scheduler.__new__(Scheduler)
    scheduler._leaders = election  # type: ignore[assignment]
    scheduler._leader = None
    scheduler._stub = lambda address: address  # type: ignore[assignment,method-assign,return-value]
    return scheduler


async def on(scheduler: Scheduler) -> str:
    """Which scheduler a placement ends on; the dead one is unavailable."""

    async def call(address: object) -> str:
        if address == "dead":
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()
            )
        return str(address)

    return await scheduler._on_leader(call)  # type: ignore[arg-type]


async def test_a_placement_waits_for_the_election() -> None:
    assert await on(client(Election(reads=4))) == "successor"


async def test_it_waits_no_longer_than_the_election_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler_client, "ELECTION_WAIT", 0.5)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):
        await on(client(Election(reads=1000)))
    assert 0.5 <= time.monotonic() - started < 1.5
