"""SchedulerService: node report streams in, placements and reservations out.
Converts messages to domain values at this edge; placement.py decides."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from sfmesh.v1 import (
    event_pb2,
    node_service_pb2,
    records_pb2,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
)

from services.common import errors
from services.common.events import EventSink
from services.common.instance_follower import InstanceFollower
from services.common.interceptors import request_id
from services.common.store import Put, Store, key, kind_prefix
from services.common.tags import instance_tags
from services.scheduler.placement import (
    Placement,
    PlacementRequest,
    Policy,
    Refusal,
    RefusalKind,
    Step,
    place,
)
from services.scheduler.registry import Capacity, Registry

log = logging.getLogger("sfmesh.scheduler")

CREATED = node_service_pb2.NODE_STATE_CREATED
MISSING = node_service_pb2.NODE_STATE_MISSING
AWAITED_REPORTS = 3
"""Report intervals a created node has to (re)open its stream after a
scheduler start or a lost stream before a refusal counts as final."""
LISTED_AWAITED = 5
"""Nodes named in a not-yet-final refusal; the rest are counted."""


@dataclass(frozen=True)
class Timing:
    """The scheduler's clocks, in seconds."""

    report_interval: int = 5
    """Told to node agents in every acknowledgement."""
    node_grace: float = 30.0
    """Without a stream this long, a node is marked missing in etcd."""
    record_interval: float = 10.0
    """The node record's lastseen/last_report are rewritten at most this often."""

    @property
    def awaited_for(self) -> float:
        """How long a created node without a stream keeps refusals from being
        final: AWAITED_REPORTS report intervals, at most the node grace."""
        return min(AWAITED_REPORTS * self.report_interval, self.node_grace)


class SchedulerServicer(scheduler_service_pb2_grpc.SchedulerServiceServicer):
    """Report streams, placement and reservations."""

    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        emitter: EventSink,
        policy: Policy,
        timing: Timing,
        placed: InstanceFollower,
    ) -> None:
        self._store = store
        self._placed = placed
        self._registry = registry
        self._emitter = emitter
        self._policy = policy
        self._timing = timing
        self._watchers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Nodes etcd shows as created are expected to report; those that
        never reconnect go missing after the grace period."""
        async for item in self._store.list_prefix(kind_prefix("node")):
            record = records_pb2.NodeRecord.FromString(item.value)
            if record.state == CREATED:
                self._expect_back(record.name)

    async def close(self) -> None:
        """Stop the missing-node timers."""
        for task in list(self._watchers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def ReportNode(
        self,
        request_iterator: AsyncIterator[scheduler_service_pb2.ReportNodeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[scheduler_service_pb2.ReportNodeResponse]:
        reply = scheduler_service_pb2.ReportNodeResponse(
            report_interval_seconds=self._timing.report_interval
        )
        name = ""
        session = 0
        written = 0.0
        facts = scheduler_service_pb2.HypervisorFacts()
        try:
            async for report in request_iterator:
                if not name:
                    if not report.facts.node or not report.facts.address:
                        raise errors.InvalidArgument(
                            "the first report must carry facts with node and address"
                        )
                    name = report.facts.node
                    facts.CopyFrom(report.facts)
                    session = self._registry.connect(name)
                    log.info("node connected", extra={"fields": {"node": name}})
                self._registry.report(name, _capacity(report))
                now = time.time()
                if not written or now - written >= self._timing.record_interval:
                    await self._write(name, CREATED, facts, report, now)
                    written = now
                yield reply
        finally:
            if name and self._registry.disconnect(name, session):
                log.info("node stream ended", extra={"fields": {"node": name}})
                self._expect_back(name)

    async def PlaceInstance(
        self, request: scheduler_service_pb2.PlaceInstanceRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_service_pb2.PlaceInstanceResponse:
        wanted = _placement_request(request)
        started = time.perf_counter()
        # Decide and reserve with no await in between: concurrent placements
        # each see the reservations of those before them.
        neighbours = self._neighbours(request.namespace) if wanted.affinity else None
        decision = place(wanted, self._registry.views(), self._policy, neighbours)
        reservation = None
        if isinstance(decision, Placement):
            reservation = self._registry.reserve(
                decision.node,
                wanted.instance_uuid,
                cpus=wanted.cpus,
                memory_mib=wanted.memory_mib,
                disk_gib=wanted.disk_gib,
                namespace=request.namespace,
                tags=frozenset(request.tags),
            )
        rid = request.request_id or request_id()
        for index, step in enumerate(decision.steps):
            extra = step_details(step, full=index in (0, len(decision.steps) - 1))
            extra["request-id"] = rid
            self._emitter.emit(
                "instance",
                wanted.instance_uuid,
                event_pb2.EVENT_TYPE_AUDIT,
                step.message,
                extra=extra,
            )
        self._emitter.emit(
            "instance",
            wanted.instance_uuid,
            event_pb2.EVENT_TYPE_STATUS,
            "schedule complete",
            extra={"request-id": rid},
            duration=time.perf_counter() - started,
        )
        if reservation is None:
            assert not isinstance(decision, Placement)
            raise self._refusal(decision)
        return scheduler_service_pb2.PlaceInstanceResponse(
            node=reservation.node, reservation_id=reservation.reservation_id
        )

    async def ReleaseReservation(
        self,
        request: scheduler_service_pb2.ReleaseReservationRequest,
        context: grpc.aio.ServicerContext,
    ) -> scheduler_service_pb2.ReleaseReservationResponse:
        if not request.reservation_id:
            raise errors.InvalidArgument("reservation_id is required")
        # Idempotent: an expired or already consumed reservation is fine.
        self._registry.release(request.reservation_id)
        return scheduler_service_pb2.ReleaseReservationResponse()

    def _neighbours(self, namespace: str) -> dict[str, list[frozenset[str]]]:
        """Per node, the tag sets of `namespace`'s instances placed there, and
        of those whose placement is still in flight (reserved, not yet seen)."""
        found: dict[str, list[frozenset[str]]] = {}
        seen = set()
        for instance in self._placed.instances():
            if instance.namespace == namespace:
                seen.add(instance.uuid)
                found.setdefault(instance.node, []).append(instance_tags(instance))
        for held in self._registry.in_flight(namespace):
            if held.instance_uuid not in seen:
                found.setdefault(held.node, []).append(held.tags)
        return found

    def _refusal(self, decision: Refusal) -> errors.SfmeshError:
        """The error of a refusal: final (404, 507) only once every created
        node has reported; before, a node missing from the view may be the
        one that fits, so it is a 503 to retry after a report interval."""
        retry = self._timing.report_interval
        awaited = self._registry.awaited()
        if awaited:
            names = ", ".join(awaited[:LISTED_AWAITED])
            if len(awaited) > LISTED_AWAITED:
                names += f" and {len(awaited) - LISTED_AWAITED} more"
            return errors.Unavailable(
                f"not every node has reported yet (waiting for {names}): {decision.message}",
                reason="NODES_NOT_REPORTED",
                retry_after=retry,
            )
        if decision.kind is RefusalKind.NOT_FOUND:
            return errors.NotFound(decision.message)
        return errors.InsufficientResources(decision.message, retry_after=retry)

    def _expect_back(self, name: str) -> None:
        """A created node without a stream: await its report for a while,
        and mark it missing if it stays away for the grace period."""
        self._registry.expect(name, self._timing.awaited_for)
        task = asyncio.create_task(self._mark_missing_later(name))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _mark_missing_later(self, name: str) -> None:
        await asyncio.sleep(self._timing.node_grace)
        if self._registry.connected(name):
            return
        try:
            item = await self._store.get(key("node", name))
            if item is None:
                return
            record = records_pb2.NodeRecord.FromString(item.value)
            if record.state != CREATED:
                return
            record.state = MISSING
            # Lost to a reconnect's write in between: that node is back.
            await self._store.commit([Put(item.key, record.SerializeToString(), item.mod_revision)])
            log.warning("node missing", extra={"fields": {"node": name}})
        except errors.SfmeshError as exc:
            log.error("could not mark node missing: %s", exc, extra={"fields": {"node": name}})

    async def _write(
        self,
        name: str,
        state: node_service_pb2.NodeState,
        facts: scheduler_service_pb2.HypervisorFacts,
        report: scheduler_service_pb2.ReportNodeRequest,
        now: float,
    ) -> None:
        record = records_pb2.NodeRecord(
            name=name, state=state, facts=facts, lastseen=now, last_report=report
        )
        record.last_report.ClearField("facts")
        try:
            await self._store.commit([Put(key("node", name), record.SerializeToString())])
        except errors.SfmeshError as exc:
            # The stream, not etcd, makes a node schedulable: keep serving it.
            log.error("could not write node record: %s", exc, extra={"fields": {"node": name}})


LISTED_IN_FULL = 20
"""Steps with at most this many candidates list them all."""


def step_details(step: Step, *, full: bool) -> dict[str, Any]:
    """The audit details of one placement step: who it dropped and why, and
    who remains — by name for the first and last steps and short lists, by
    count otherwise (the names follow from the first list and the drops;
    listing 1,000 nodes at every step would cost more than the decision).
    Pure."""
    details: dict[str, Any] = {}
    if full or len(step.candidates) <= LISTED_IN_FULL:
        details["candidates"] = list(step.candidates)
    else:
        details["remaining"] = len(step.candidates)
    if step.dropped:
        details["dropped"] = dict(step.dropped)
    return details


def _capacity(report: scheduler_service_pb2.ReportNodeRequest) -> Capacity:
    return Capacity(
        cpus_total=report.cpus_total,
        cpus_used=report.cpus_used,
        memory_total_mib=report.memory_total_mib,
        memory_free_mib=report.memory_free_mib,
        disk_free_gib=report.disk_free_gib,
        load_1m=report.load_1m,
        instance_uuids=frozenset(report.instance_uuids),
    )


def _placement_request(request: scheduler_service_pb2.PlaceInstanceRequest) -> PlacementRequest:
    if not request.instance_uuid:
        raise errors.InvalidArgument("instance_uuid is required")
    if request.cpus < 1 or request.memory < 1 or request.disk_gib < 0:
        raise errors.InvalidArgument("cpus and memory must be positive, disk_gib not negative")
    return PlacementRequest(
        instance_uuid=request.instance_uuid,
        cpus=request.cpus,
        memory_mib=request.memory,
        disk_gib=request.disk_gib,
        placed_on=request.placed_on if request.HasField("placed_on") else None,
        affinity=dict(request.affinity),
    )
