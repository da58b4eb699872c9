"""services/api/instances/purge.py against a real etcd: only long-deleted records go."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sfmesh.v1 import instance_pb2, network_service_pb2, records_pb2

from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.clients.outbox import Outbox
from services.api.instances.deletion import Finisher
from services.api.instances.idempotency import IdempotencyKeys, record_key
from services.api.instances.purge import network_purgeable, purge_once, purgeable
from services.api.networks.store import NetworkStore
from services.common import instance_states as states
from services.common.addresses import FLOATING, address_key, reservation
from services.common.events import EventEmitter
from services.common.instance_store import InstanceStore
from services.common.store import Delete, Put, Store, key

NOW = 1_000_000.0


def record(state: int, deleted_at: float = 0.0) -> records_pb2.InstanceRecord:
    instance = instance_pb2.Instance(uuid=str(uuid.uuid4()), state=state)  # type: ignore[arg-type]
    return records_pb2.InstanceRecord(instance=instance, deleted_at=deleted_at)


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    connection = Store(etcd)
    yield connection
    await connection.close()


def test_purgeable_only_after_the_retention() -> None:
    assert purgeable(record(states.DELETED, NOW - 61), NOW, 60)
    assert not purgeable(record(states.DELETED, NOW - 59), NOW, 60)
    assert not purgeable(record(states.ERROR, NOW - 1000), NOW, 60)


def test_networks_are_purgeable_only_after_the_retention() -> None:
    def network(state: int, deleted_at: float) -> records_pb2.NetworkRecord:
        view = network_service_pb2.Network(uuid=str(uuid.uuid4()), state=state)  # type: ignore[arg-type]
        return records_pb2.NetworkRecord(network=view, deleted_at=deleted_at)

    deleted = network_service_pb2.NETWORK_STATE_DELETED
    assert network_purgeable(network(deleted, NOW - 61), NOW, 60)
    assert not network_purgeable(network(deleted, NOW - 59), NOW, 60)
    assert not network_purgeable(network(network_service_pb2.NETWORK_STATE_CREATED, 1), NOW, 60)


async def test_purge_once_removes_only_long_deleted_records(
    store: Store, events: Events, emitter: EventEmitter
) -> None:
    instances, keys, networks = InstanceStore(store), IdempotencyKeys(store), NetworkStore(store)
    old = record(states.DELETED, NOW - 3600)
    recent = record(states.DELETED, NOW - 10)
    alive = record(states.INITIAL)
    for each in (old, recent, alive):
        assert await instances.create(each)
    expired_key = record_key("purge-test", str(uuid.uuid4()))
    key_record = records_pb2.IdempotencyRecord(instance_uuid="x", expires_at=NOW - 1)
    assert await store.commit([Put(expired_key, key_record.SerializeToString(), 0)])

    finisher = Finisher(instances, networks, events, ArtifactStore(store), Outbox(store, emitter))
    assert await purge_once(instances, keys, networks, finisher, retention=600, now=NOW) >= 1

    assert await instances.get(old.instance.uuid) is None
    assert await instances.get(recent.instance.uuid) is not None
    assert await instances.get(alive.instance.uuid) is not None
    assert await store.get(expired_key) is None
    for each in (recent, alive):
        stored = await instances.get(each.instance.uuid)
        assert stored is not None and await instances.remove(stored)


async def test_purge_gives_back_what_a_half_done_delete_kept_and_nothing_else(
    store: Store, events: Events, emitter: EventEmitter
) -> None:
    """A delete that stopped between its write and its release leaves the
    addresses reserved: the purge gives them back, but only while they still
    name the purged holder."""
    instances, keys, networks = InstanceStore(store), IdempotencyKeys(store), NetworkStore(store)
    network = str(uuid.uuid4())
    gone = record(states.DELETED, NOW - 3600)
    nic = gone.instance.interfaces.add(
        uuid=str(uuid.uuid4()), network_uuid=network, ipv4="10.1.0.5", floating="10.254.0.5"
    )
    assert await instances.create(gone)
    kept = reservation("10.1.0.5", "instance", ["instance", gone.instance.uuid], NOW)
    taken_since = reservation("10.254.0.5", "floating", ["networkinterface", "another"], NOW)
    assert await store.commit(
        [
            Put(address_key(network, "10.1.0.5"), kept.SerializeToString(), 0),
            Put(address_key(FLOATING, "10.254.0.5"), taken_since.SerializeToString(), 0),
        ]
    )
    assert (await instances.holding(nic.uuid)) is not None  # the NIC's index entry
    await purge_once(
        instances,
        keys,
        networks,
        Finisher(instances, networks, events, ArtifactStore(store), Outbox(store, emitter)),
        retention=60,
        now=NOW,
    )
    assert await instances.get(gone.instance.uuid) is None
    assert await store.get(key("interface", nic.uuid)) is None
    assert await store.get(address_key(network, "10.1.0.5")) is None
    assert await store.get(address_key(FLOATING, nic.floating)) is not None
    await store.commit([Delete(address_key(FLOATING, nic.floating))])
