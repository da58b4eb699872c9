"""A scheduler built in the test's process, for integration tests that
serve it on a gRPC server of their own: the servicer with its leadership
and reservation store, on the session's shared etcd."""

from __future__ import annotations

from typing import Any

from services.common.leaders import SCHEDULER, leader_key
from services.common.presence import KIND as PRESENCE
from services.common.store import Delete, Store, kind_prefix
from services.scheduler.leadership import Leadership
from services.scheduler.reservations import KIND, ReservationStore
from services.scheduler.servicer import SchedulerServicer

RESERVATION_TTL = 120.0


def build_scheduler(
    store: Store, address: str, **parts: Any
) -> tuple[SchedulerServicer, Leadership]:
    """A servicer of `parts` (registry, emitter, policy, timing, placed) and
    the leadership to start once `address` serves it."""
    leadership = Leadership(store, address)
    servicer = SchedulerServicer(
        store=store,
        leadership=leadership,
        reservations=ReservationStore(store, ttl=RESERVATION_TTL),
        **parts,
    )
    return servicer, leadership


async def forget_schedulers(store: Store) -> None:
    """Remove what earlier tests' schedulers left in the shared etcd: node
    records and presence keys (a new leader would await the created nodes),
    reservations and the leader key."""
    doomed = [leader_key(SCHEDULER)]
    for kind in ("node", PRESENCE, KIND):
        doomed += [item.key async for item in store.list_prefix(kind_prefix(kind))]
    await store.commit([Delete(at) for at in doomed])
