"""SchedulerService: node report streams in, placements and reservations out.
Converts messages to domain values at this edge; placement.py decides."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from sfmesh.v1 import (
    event_pb2,
    records_pb2,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
)

from services.common import errors
from services.common.events import EventSink
from services.common.instance_follower import InstanceFollower
from services.common.interceptors import request_id
from services.common.scheduler_policy import POLICY_KEY
from services.common.store import Put, Store
from services.common.tags import instance_tags
from services.scheduler.leadership import Leadership, Term
from services.scheduler.metrics import NOT_REPORTED, PLACEMENTS, REFUSALS
from services.scheduler.node_records import NodeRecords, Timing
from services.scheduler.node_states import NodeDeleted, NotPresent
from services.scheduler.placement import (
    Placement,
    PlacementRequest,
    Policy,
    Refusal,
    RefusalKind,
    Step,
    place,
)
from services.scheduler.registry import Capacity, Registry, Reservation
from services.scheduler.reservations import ReservationStore

log = logging.getLogger("sfmesh.scheduler")

LISTED_AWAITED = 5
"""Nodes named in a not-yet-final refusal; the rest are counted."""


class SchedulerServicer(scheduler_service_pb2_grpc.SchedulerServiceServicer):
    """Report streams, placement and reservations, served while this replica
    leads (`leadership.py`); a follower refuses them with NOT_LEADER."""

    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        emitter: EventSink,
        policy: Policy,
        timing: Timing,
        placed: InstanceFollower,
        leadership: Leadership,
        reservations: ReservationStore,
    ) -> None:
        self._placed = placed
        self._store = store
        self._registry = registry
        self._emitter = emitter
        self._policy = policy
        self._timing = timing
        self._leadership = leadership
        self._reservations = reservations
        self._nodes = NodeRecords(store, registry, timing, emitter, lost=self._lost)
        self._streams: dict[str, tuple[int, asyncio.Event]] = {}
        """Node -> its stream's session, and the event that ends the stream."""
        self._term: Term | None = None

    async def lead(self, term: Term) -> None:
        """Take the lead: hold every reservation etcd keeps (an earlier
        leader's too), bring node records in line with presence keys, await
        the created nodes and publish the policy it places by, then serve."""
        self._registry.restore(await self._reservations.load())
        await self._nodes.lead(term)
        await self._store.commit([term.fence(), Put(POLICY_KEY, policy_record(self._policy))])
        self._term = term

    async def follow(self) -> None:
        """Another replica leads: streams end (`Term.within`), and what the
        leader keeps is its to keep."""
        self._term = None
        await self._nodes.stop()
        self._registry.clear()

    async def close(self) -> None:
        """Stop following presence keys."""
        await self._nodes.stop()

    def _lost(self, name: str) -> None:
        """`name`'s presence went: unschedulable now, and its stream ends."""
        session, cut = self._streams.pop(name, (0, None))
        if cut is not None:
            self._registry.disconnect(name, session)
            cut.set()

    def _leading(self) -> Term:
        """The current term; NOT_LEADER when this replica does not lead."""
        term = self._term
        if term is None or term.over.is_set():
            raise self._leadership.refusal()
        return term

    async def ReportNode(
        self,
        request_iterator: AsyncIterator[scheduler_service_pb2.ReportNodeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[scheduler_service_pb2.ReportNodeResponse]:
        term = self._leading()
        reply = scheduler_service_pb2.ReportNodeResponse(
            report_interval_seconds=self._timing.report_interval
        )
        name = ""
        session = 0
        written = 0.0
        facts = scheduler_service_pb2.HypervisorFacts()
        cut = asyncio.Event()
        try:
            async for report in term.within(request_iterator, cut):
                now = time.time()
                if not name:
                    if not report.facts.node or not report.facts.address:
                        raise errors.InvalidArgument(
                            "the first report must carry facts with node and address"
                        )
                    facts.CopyFrom(report.facts)
                    # deleted or not present: refused before it counts
                    await self._nodes.register(facts, report, now, term, opening=True)
                    name, written = facts.node, now
                    session = self._registry.connect(name)
                    self._streams[name] = (session, cut)
                    log.info("node connected", extra={"fields": {"node": name}})
                elif now - written >= self._timing.record_interval:
                    await self._nodes.register(facts, report, now, term, opening=False)
                    written = now
                if cut.is_set():
                    break
                await self._reservations.drop(self._registry.report(name, _capacity(report)))
                yield reply
            if cut.is_set():
                raise NotPresent(name)
            if term.over.is_set():
                raise self._leadership.refusal()
        except (NodeDeleted, NotPresent):
            cut.set()  # gone, not restarting: not awaited back
            raise
        finally:
            if name and self._streams.get(name, (0, None))[0] == session:
                del self._streams[name]
            if name and self._registry.disconnect(name, session):
                log.info("node stream ended", extra={"fields": {"node": name}})
                if not term.over.is_set() and not cut.is_set():
                    self._nodes.expect_back(name)

    async def PlaceInstance(
        self, request: scheduler_service_pb2.PlaceInstanceRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_service_pb2.PlaceInstanceResponse:
        term = self._leading()
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
            await self._keep(reservation, term)
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
        PLACEMENTS.inc()
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
        self._leading()
        # Idempotent: an expired or already consumed reservation is fine.
        self._registry.release(request.reservation_id)
        await self._reservations.drop([request.reservation_id])
        return scheduler_service_pb2.ReleaseReservationResponse()

    async def _keep(self, reservation: Reservation, term: Term) -> None:
        """Store a reservation in etcd before the placement answers, so the
        next leader honours it; when that fails, it was never made."""
        try:
            if not await self._reservations.write(reservation, term.fence()):
                raise self._leadership.refusal()
        except BaseException:
            self._registry.release(reservation.reservation_id)
            raise

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
        """The error of a refusal (counted by reason): final (404, 507) only once every created
        node has reported; before, a node missing from the view may be the
        one that fits, so it is a 503 to retry after a report interval."""
        retry = self._timing.report_interval
        awaited = self._registry.awaited()
        REFUSALS.labels(NOT_REPORTED if awaited else decision.reason).inc()
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


def policy_record(policy: Policy) -> bytes:
    """`policy` as the record the api reads (`services/common/scheduler_policy.py`). Pure."""
    return records_pb2.SchedulerPolicyRecord(
        cpu_overcommit_ratio=policy.cpu_overcommit_ratio,
        ram_reserved_mib=policy.ram_reserved_mib,
        min_free_disk_gib=policy.min_free_disk_gib,
    ).SerializeToString()
