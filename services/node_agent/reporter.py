"""The long-lived `SchedulerService.ReportNode` stream.

One report at a time: the first of each stream carries the host facts; the
scheduler answers every report with the seconds until the next one is due.
A stream that fails, ends or stops answering is reopened after a backoff of
0.2 s doubling to 5 s, reset once a stream has been answered. A new stream
waits for the scheduler to be reachable (`wait_for_ready`) rather than
failing while it restarts, so it opens within the channel's reconnect
backoff (services/common/channels.py) of the scheduler listening again; a
stream that ends between reports is noticed at once, not at the next report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc
from sfmesh.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc

from services.common.channels import quick_reconnect
from services.common.tokens import Credentials
from services.common.transport import Transport
from services.node_agent.facts import Capacity, HostFacts

log = logging.getLogger("sfmesh.node_agent.reporter")

BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 5.0
DEFAULT_INTERVAL = 5.0
"""Seconds between reports when the scheduler answers no positive interval."""
ANSWER_TIMEOUT = 15.0
"""Seconds to wait for an answer before the stream counts as dead."""

_CHANNEL_OPTIONS = quick_reconnect()


def next_backoff(backoff: float) -> float:
    """The wait after `backoff`: doubled, capped at BACKOFF_MAX. Pure."""
    return min(backoff * 2, BACKOFF_MAX)


def report_interval(answered: int) -> float:
    """Seconds until the next report, from the scheduler's answer. Pure."""
    return float(answered) if answered > 0 else DEFAULT_INTERVAL


def to_request(
    capacity: Capacity, facts: HostFacts | None
) -> scheduler_service_pb2.ReportNodeRequest:
    """The wire form of one report; `facts` only in a stream's first. Pure."""
    request = scheduler_service_pb2.ReportNodeRequest(
        cpus_total=capacity.cpus_total,
        cpus_used=capacity.cpus_used,
        memory_total_mib=capacity.memory_total_mib,
        memory_free_mib=capacity.memory_free_mib,
        disk_free_gib=capacity.disk_free_gib,
        load_1m=capacity.load_1m,
        instance_uuids=list(capacity.instance_uuids),
    )
    if facts is not None:
        request.facts.CopyFrom(
            scheduler_service_pb2.HypervisorFacts(
                node=facts.node,
                address=facts.address,
                kvm=facts.kvm,
                libvirt_version=facts.libvirt_version,
                underlay_address=facts.underlay_address,
            )
        )
    return request


class Reporter:
    """Keeps one report stream open to the scheduler for as long as it runs."""

    def __init__(
        self,
        *,
        scheduler: str,
        facts: HostFacts,
        sample: Callable[[], Capacity],
        credentials: Credentials,
        transport: Transport,
        answer_timeout: float = ANSWER_TIMEOUT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._scheduler = scheduler
        self._facts = facts
        self._sample = sample
        self._credentials = credentials
        self._transport = transport
        self._answer_timeout = answer_timeout
        self._sleep = sleep
        self._answered = False
        self._nudged = asyncio.Event()

    def nudge(self) -> None:
        """Report now rather than at the next interval: what the node hosts
        changed, and the scheduler holds reservations until it hears so."""
        self._nudged.set()

    async def run(self) -> None:
        """Report until cancelled."""
        async with self._transport.channel(self._scheduler, options=_CHANNEL_OPTIONS) as channel:
            stub = scheduler_service_pb2_grpc.SchedulerServiceStub(channel)
            backoff = BACKOFF_INITIAL
            failures = 0
            while True:
                self._answered = False
                reason = "the stream ended"
                try:
                    await self._stream(stub)
                except Exception as exc:  # any failure means: reconnect
                    reason = _describe(exc)
                if self._answered:
                    backoff, failures = BACKOFF_INITIAL, 0  # it was a healthy stream
                failures += 1
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "report stream failed; reconnecting",
                    extra={"fields": {"error": reason, "retry_in": backoff, "failures": failures}},
                )
                await asyncio.sleep(backoff)
                backoff = next_backoff(backoff)

    async def _stream(self, stub: scheduler_service_pb2_grpc.SchedulerServiceStub) -> None:
        """One stream: facts first, then a report per answered interval."""
        call = stub.ReportNode(metadata=self._credentials(), wait_for_ready=True)
        try:
            facts: HostFacts | None = self._facts
            while True:
                await call.write(to_request(self._sample(), facts))
                facts = None
                # asyncio.timeout, not wait_for: on 3.11, wait_for can swallow a
                # cancellation that lands as the read completes, and then the
                # reporter would never stop.
                async with asyncio.timeout(self._answer_timeout):
                    answer = await call.read()
                if answer is grpc.aio.EOF:
                    return
                if not self._answered:
                    log.info(
                        "reporting to the scheduler",
                        extra={"fields": {"scheduler": self._scheduler}},
                    )
                self._answered = True
                await self._pause(report_interval(answer.report_interval_seconds), call)
                if call.done():  # the scheduler went: reopen now, not at the next report
                    return
        finally:
            call.cancel()

    async def _pause(self, seconds: float, call: grpc.aio.StreamStreamCall) -> None:
        """Sleep until the next report is due, until nudged, or until the
        stream ends."""
        sleeping = asyncio.ensure_future(self._sleep(seconds))
        nudged = asyncio.ensure_future(self._nudged.wait())
        ended = asyncio.ensure_future(call.code())
        try:
            await asyncio.wait((sleeping, nudged, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            nudged.cancel()
            ended.cancel()
        self._nudged.clear()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    if isinstance(exc, TimeoutError):
        return "the scheduler stopped answering"
    return repr(exc)


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel a running reporter and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
