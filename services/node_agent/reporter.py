"""The long-lived `SchedulerService.ReportNode` stream, to the leading
scheduler.

The leader is the one etcd names (`services/common/leaders.py`; the
configured address when none does), read at each stream's opening; when the
key changes, the stream (or the wait before the next) ends and one opens to
the new leader at once. A scheduler that does not lead refuses the stream
(NOT_LEADER), which counts as a failure like any other.

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
from services.common.leaders import Leader, LeaderLookup
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
        load_5m=capacity.load_5m,
        load_15m=capacity.load_15m,
        instances_active=capacity.instances_active,
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
    """Keeps one report stream open to the leading scheduler for as long as
    it runs."""

    def __init__(
        self,
        *,
        leaders: LeaderLookup,
        facts: HostFacts,
        sample: Callable[[], Capacity],
        credentials: Credentials,
        transport: Transport,
        answer_timeout: float = ANSWER_TIMEOUT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._leaders = leaders
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
        backoff = BACKOFF_INITIAL
        failures = 0
        while True:
            self._answered = False
            reason = "the stream ended"
            leader: Leader | None = None
            try:
                leader = await self._leaders.read()
                if not await self._unless_changed(self._report_to(leader.address), leader):
                    log.info("the leading scheduler changed; reporting to the new one")
                    backoff, failures = BACKOFF_INITIAL, 0
                    continue
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
            if leader is None:
                await asyncio.sleep(backoff)
            elif not await self._unless_changed(asyncio.sleep(backoff), leader):
                backoff, failures = BACKOFF_INITIAL, 0
                continue
            backoff = next_backoff(backoff)

    async def _unless_changed(self, work: Awaitable[None], leader: Leader) -> bool:
        """Run `work` to its end (True), or until the leader key changes
        after `leader` was read (False; `work` is cancelled)."""
        working = asyncio.ensure_future(work)
        changed = asyncio.ensure_future(self._leaders.changed(leader))
        try:
            await asyncio.wait((working, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (working, changed):
                task.cancel()
            await asyncio.gather(working, changed, return_exceptions=True)
        if working.cancelled():
            return False
        working.result()  # its failure, if any
        return True

    async def _report_to(self, address: str) -> None:
        """One stream to the scheduler at `address`, on a channel of its own."""
        async with self._transport.channel(address, options=_CHANNEL_OPTIONS) as channel:
            await self._stream(scheduler_service_pb2_grpc.SchedulerServiceStub(channel), address)

    async def _stream(
        self, stub: scheduler_service_pb2_grpc.SchedulerServiceStub, address: str
    ) -> None:
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
                        extra={"fields": {"scheduler": address}},
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
