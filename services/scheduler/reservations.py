"""Placements in flight, kept in etcd so that a scheduler taking over the
lead honours them and never over-commits a node.

Each reservation is one key, `/sfmesh/v1/reservation/<id>`
(`ReservationRecord`), written create-only and fenced by the leader's claim
in one transaction before PlaceInstance answers, so a deposed leader cannot
write one. It is deleted when the node reports the instance or the api
releases it; otherwise its lease takes it. Rather than a lease per
reservation (a grant per placement), reservations share a lease granted for
the TTL plus LEASE_SLACK, and a new one is granted once the current one
would end before a reservation made now: a key outlives its reservation by
at most LEASE_SLACK, and a placement pays a grant at most every LEASE_SLACK
seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence

from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.store import Delete, Expect, Put, Store, key, kind_prefix
from services.scheduler.registry import Reservation

log = logging.getLogger("sfmesh.scheduler.reservations")

KIND = "reservation"
LEASE_SLACK = 10.0
"""Seconds a shared lease serves new reservations for."""


def to_record(held: Reservation, remaining: float, now: float) -> records_pb2.ReservationRecord:
    """The stored form of a reservation with `remaining` seconds to live, at
    epoch time `now`. Pure."""
    return records_pb2.ReservationRecord(
        node=held.node,
        instance_uuid=held.instance_uuid,
        cpus=held.cpus,
        memory_mib=held.memory_mib,
        disk_gib=held.disk_gib,
        namespace=held.namespace,
        tags=sorted(held.tags),
        expires_at=now + remaining,
    )


def from_record(
    reservation_id: str, record: records_pb2.ReservationRecord, now: float, clock: float
) -> Reservation:
    """A stored reservation, read at epoch time `now`, with its expiry on a
    registry clock that reads `clock`. Pure."""
    return Reservation(
        reservation_id=reservation_id,
        node=record.node,
        instance_uuid=record.instance_uuid,
        cpus=record.cpus,
        memory_mib=record.memory_mib,
        disk_gib=record.disk_gib,
        expires=clock + (record.expires_at - now),
        namespace=record.namespace,
        tags=frozenset(record.tags),
    )


class ReservationStore:
    """The etcd copy of the leader's reservations."""

    def __init__(
        self, store: Store, *, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """`ttl`: seconds a reservation lives; `clock`: the registry's."""
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._lease = 0
        self._lease_ends = -math.inf
        """When the current shared lease runs out, on `clock`."""
        self._granting = asyncio.Lock()

    async def write(self, held: Reservation, fence: Expect) -> bool:
        """Store `held`; False, writing nothing, when `fence` no longer holds."""
        record = to_record(held, held.expires - self._clock(), time.time())
        lease = await self._shared_lease()
        at = key(KIND, held.reservation_id)
        return await self._store.commit(
            [fence, Put(at, record.SerializeToString(), mod_revision=0, lease=lease)]
        )

    async def drop(self, reservation_ids: Sequence[str]) -> None:
        """Delete consumed or released reservations; a failure is only logged
        (their lease takes them)."""
        if not reservation_ids:
            return
        try:
            await self._store.commit([Delete(key(KIND, rid)) for rid in reservation_ids])
        except errors.SfmeshError as exc:
            log.warning("could not delete reservations: %s", exc)

    async def load(self) -> list[Reservation]:
        """Every stored reservation that has not lapsed."""
        prefix = kind_prefix(KIND)
        now, clock = time.time(), self._clock()
        found = [
            from_record(
                item.key[len(prefix) :].decode(),
                records_pb2.ReservationRecord.FromString(item.value),
                now,
                clock,
            )
            async for item in self._store.list_prefix(prefix)
        ]
        return [held for held in found if held.expires > clock]

    async def _shared_lease(self) -> int:
        """A lease that outlives a reservation made now."""
        async with self._granting:
            if self._lease_ends - self._clock() < self._ttl:
                asked = self._clock()
                self._lease = await self._store.grant(math.ceil(self._ttl + LEASE_SLACK))
                self._lease_ends = asked + self._ttl + LEASE_SLACK
        return self._lease
