"""services/scheduler/leadership.py against a real etcd: one of several
replicas leads, another takes over when it goes, a restarted replica takes
its own dead claim back at once, and a leader deposed behind its back
cannot write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aetcd
import pytest

from services.common.leaders import SCHEDULER, leader_key
from services.common.store import Put, Store
from services.scheduler.leadership import LEADER_TTL, Leadership, Term
from services.scheduler.registry import Reservation
from services.scheduler.reservations import ReservationStore
from tests.schedulers import forget_schedulers


class Recorder:
    """A holder that records its terms."""

    def __init__(self) -> None:
        self.terms: list[Term] = []
        self.followed = 0

    async def lead(self, term: Term) -> None:
        self.terms.append(term)

    async def follow(self) -> None:
        self.followed += 1

    @property
    def leading(self) -> bool:
        return bool(self.terms) and not self.terms[-1].over.is_set()


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    connection = Store(etcd)
    await forget_schedulers(connection)
    yield connection
    await forget_schedulers(connection)
    await connection.close()


async def eventually(condition: object, within: float) -> float:
    """Seconds until `condition()` held; fails after `within`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():  # type: ignore[operator]
        assert loop.time() - started < within, "timed out"
        await asyncio.sleep(0.01)
    return loop.time() - started


async def test_one_replica_leads_and_another_takes_over_when_it_stops(store: Store) -> None:
    replicas = [(Leadership(store, f"127.0.0.1:{n}"), Recorder()) for n in (1, 2, 3)]
    for leadership, holder in replicas:
        await leadership.start(holder)
    try:
        [(first, _)] = [(leadership, h) for leadership, h in replicas if h.leading]
        assert all(leadership.leader == first.leader for leadership, _ in replicas)
        others = [(leadership, h) for leadership, h in replicas if leadership is not first]
        await first.close()
        took = await eventually(lambda: sum(h.leading for _, h in others) == 1, within=2.0)
        assert took < 0.5  # a stopped leader's claim goes with it
        [(second, _)] = [(leadership, h) for leadership, h in others if h.leading]
        [(third, _)] = [(leadership, h) for leadership, h in others if not h.leading]
        item = await store.get(leader_key(SCHEDULER))
        assert item is not None and item.value.decode() == second.leader
        await eventually(lambda: third.leader == second.leader, within=1.0)
        refusal = third.refusal().message
        assert refusal == f"this scheduler does not lead: the leader is {second.leader}"
    finally:
        for leadership, _ in replicas:
            await leadership.close()


async def test_a_restarted_replica_takes_its_dead_claim_back_at_once(store: Store) -> None:
    dead_lease = await store.grant(30)  # nobody keeps it alive; it would take 30 s to go
    claim = Put(leader_key(SCHEDULER), b"127.0.0.1:7", mod_revision=0, lease=dead_lease)
    assert await store.commit([claim])
    leadership, holder = Leadership(store, "127.0.0.1:7"), Recorder()
    await leadership.start(holder)
    try:
        assert holder.leading
    finally:
        await leadership.close()
    assert await store.get(leader_key(SCHEDULER)) is None


async def test_a_leader_deposed_behind_its_back_cannot_write(store: Store, etcd: str) -> None:
    leadership, holder = Leadership(store, "127.0.0.1:8"), Recorder()
    await leadership.start(holder)
    reservations = ReservationStore(store, ttl=60)
    [term] = holder.terms
    try:
        assert await reservations.write(reservation("before"), term.fence())
        host, _, port = etcd.rpartition(":")
        client = aetcd.Client(host=host, port=int(port))
        try:
            claimed = await client.get(leader_key(SCHEDULER))
            assert claimed is not None
            await client.revoke_lease(claimed.lease)
        finally:
            await client.close()
        assert not await reservations.write(reservation("after"), term.fence())
        assert {held.reservation_id for held in await reservations.load()} == {"before"}
        await eventually(lambda: term.over.is_set(), within=LEADER_TTL)
        assert holder.followed == 1
    finally:
        await leadership.close()


def reservation(reservation_id: str) -> Reservation:
    return Reservation(
        reservation_id=reservation_id,
        node="n1",
        instance_uuid=f"i-{reservation_id}",
        cpus=1,
        memory_mib=512,
        disk_gib=1,
        expires=asyncio.get_running_loop().time() + 60,
    )
