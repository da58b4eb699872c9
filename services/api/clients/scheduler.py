"""The api's client of the scheduler: place an instance before it is written,
and give the reservation back when the write does not happen.

Calls go to the leading scheduler, which etcd names (`services/common/
leaders.py`; the configured address when none does), read once and kept.
When the scheduler called is unavailable (gone, not leading, or a new
leader not serving yet), the call waits for an election: it is sent again
each time the key changes, or `ELECTION_POLL` seconds after the last try,
for up to `ELECTION_WAIT` seconds. A killed leader's key lasts its lease
(2 s) and its successor serves once it has loaded the reservations and
heard from the nodes, so a create sent meanwhile is placed late rather
than answered 503."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf import json_format
from sfmesh.v1 import (
    instance_pb2,
    node_service_pb2,
    records_pb2,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
)

from services.common import errors
from services.common.channels import quick_reconnect
from services.common.leaders import SCHEDULER, Leader, LeaderLookup
from services.common.store import Store, key
from services.common.tags import instance_tags
from services.common.tokens import InternalCredentials
from services.common.transport import Transport

log = logging.getLogger("sfmesh.api")
T = TypeVar("T")
Stub = scheduler_service_pb2_grpc.SchedulerServiceStub

PLACE_DEADLINE = 10.0
UNREACHABLE_RETRY = 1
"""Seconds a client is told to wait when the scheduler cannot be reached
(a restart takes about that)."""
ELECTION_WAIT = 5.0
"""Seconds a call waits for a scheduler that leads and serves, once the
one called was unavailable: a lease's TTL, then the successor's start."""
ELECTION_POLL = 0.25
"""Seconds between its tries while the leader key stays the same."""


@dataclass(frozen=True)
class Placement:
    """Where the scheduler put an instance, and the reservation it holds."""

    node: str
    reservation_id: str


def affinity(instance: instance_pb2.Instance) -> dict[str, int]:
    """`metadata.affinity` as tag -> weight (validated at create: integers,
    or strings of them). Pure."""
    if "affinity" not in instance.metadata.fields:
        return {}
    weights = json_format.MessageToDict(instance.metadata.fields["affinity"].struct_value)
    return {tag: int(weight) for tag, weight in weights.items()}


def disk_gib(instance: instance_pb2.Instance) -> int:
    """The disk an instance asks for, in GiB (sized disks only). Pure."""
    return sum(disk.size for disk in instance.disk_spec if disk.HasField("size"))


def placement_error(exc: grpc.aio.AioRpcError) -> errors.SfmeshError:
    """The error a failed PlaceInstance answers: the scheduler's own as it
    is, or, when it was not reached, a 503 to retry in UNREACHABLE_RETRY
    seconds. Pure."""
    error = errors.from_rpc_error(exc, "scheduler")
    if isinstance(error, errors.Unavailable) and error.retry_after is None:
        return errors.Unavailable(error.message, reason=error.reason, retry_after=UNREACHABLE_RETRY)
    return error


class Scheduler:
    """PlaceInstance and ReleaseReservation on the leading scheduler,
    carrying the internal identity."""

    def __init__(
        self,
        address: str,
        credentials: InternalCredentials,
        store: Store,
        *,
        transport: Transport,
    ) -> None:
        """`address`: the scheduler's when etcd names no leader."""
        self._store = store
        self._transport = transport
        self._leaders = LeaderLookup(store, SCHEDULER, fallback=address)
        self._leader: Leader | None = None
        self._channels: dict[str, tuple[grpc.aio.Channel, Stub]] = {}
        """One per scheduler called (the replicas, at most)."""
        self._credentials = credentials

    def _stub(self, address: str) -> Stub:
        if address not in self._channels:
            channel = self._transport.channel(address, options=quick_reconnect())
            self._channels[address] = (channel, Stub(channel))
        return self._channels[address][1]

    async def _on_leader(self, call: Callable[[Stub], Awaitable[T]]) -> T:
        """`call` on the leader; while the scheduler called is unavailable,
        again on whichever etcd names, until `ELECTION_WAIT` has passed."""
        leader = self._leader or await self._read_leader()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ELECTION_WAIT
        while True:
            try:
                return await call(self._stub(leader.address))
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or loop.time() >= deadline:
                    raise
            wait = min(ELECTION_POLL, max(deadline - loop.time(), 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._leaders.changed(leader), wait)
            leader = await self._read_leader()

    async def _read_leader(self) -> Leader:
        self._leader = await self._leaders.read()
        return self._leader

    async def place(self, instance: instance_pb2.Instance, request_id: str) -> Placement:
        """A node and a reservation for `instance`; the scheduler's 404, 503
        and 507 pass through unchanged, an unreachable scheduler is a 503
        with a retry hint."""
        request = scheduler_service_pb2.PlaceInstanceRequest(
            instance_uuid=instance.uuid,
            cpus=instance.cpus,
            memory=instance.memory,
            disk_gib=disk_gib(instance),
            disk=instance.disk_spec,
            request_id=request_id,
            namespace=instance.namespace,
            affinity=affinity(instance),
            tags=sorted(instance_tags(instance)),
        )
        if instance.HasField("requested_placement"):
            await self._check_forced(instance.requested_placement)
            request.placed_on = instance.requested_placement
        try:
            reply = await self._on_leader(
                lambda stub: stub.PlaceInstance(
                    request, metadata=self._credentials.metadata(), timeout=PLACE_DEADLINE
                )
            )
        except grpc.aio.AioRpcError as exc:
            raise placement_error(exc) from exc
        return Placement(node=reply.node, reservation_id=reply.reservation_id)

    async def _check_forced(self, node: str) -> None:
        """A forced node must be one the scheduler recorded, and be up
        (reference §4.4)."""
        item = await self._store.get(key("node", node))
        if item is None:
            raise errors.NotFound("Specified node does not exist")
        if (
            records_pb2.NodeRecord.FromString(item.value).state
            != node_service_pb2.NODE_STATE_CREATED
        ):
            raise errors.NotFound("Specified node not ready")

    async def release(self, placement: Placement) -> None:
        """Give a reservation back; a failure is only logged, since the
        reservation expires on its own."""
        request = scheduler_service_pb2.ReleaseReservationRequest(
            reservation_id=placement.reservation_id
        )
        try:
            await self._on_leader(
                lambda stub: stub.ReleaseReservation(
                    request, metadata=self._credentials.metadata(), timeout=PLACE_DEADLINE
                )
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "could not release reservation: %s",
                exc.code().name,
                extra={"fields": {"node": placement.node}},
            )

    async def close(self) -> None:
        """Close the channels."""
        for channel, _ in self._channels.values():
            await channel.close()
