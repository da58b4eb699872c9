"""services/api/nodes/retirement.py and store.py against a real etcd: a
deleted node's instances end in etcd only and give back what they held, its
blob locations go, and the sweep finishes a retirement cut short, then marks
the node retired once no create can reach it."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sfmesh.v1 import artifact_pb2, node_service_pb2, records_pb2

from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.clients.outbox import Outbox
from services.api.instances.deletion import Finisher
from services.api.networks.store import NetworkStore
from services.api.nodes import rules
from services.api.nodes.retirement import Retirement
from services.api.nodes.store import NodeStore
from services.common import instance_states as states
from services.common.events import EventEmitter
from services.common.instance_store import InstanceStore
from services.common.presence import presence_key
from services.common.store import Put, Store, key
from tests.integration.api.test_deletion import Stores, held, placed, stored


@pytest.fixture
async def stores(etcd: str, events: Events, emitter: EventEmitter) -> AsyncIterator[Stores]:
    store = Store(etcd)
    instances, networks = InstanceStore(store), NetworkStore(store)
    outbox = Outbox(store, emitter)
    finisher = Finisher(instances, networks, events, ArtifactStore(store), outbox)
    yield Stores(store, instances, networks, finisher)
    await store.close()


def retirement(stores: Stores) -> Retirement:
    artifacts = ArtifactStore(stores.store)
    return Retirement(NodeStore(stores.store), stores.instances, stores.finisher, artifacts)


async def a_node(stores: Stores, *, deleted_at: float = 0.0) -> str:
    """A created node holding its presence key; deleted since `deleted_at`
    when given (its presence key left, as if the delete stopped half-way)."""
    name = f"hv-{uuid.uuid4().hex[:8]}"
    record = records_pb2.NodeRecord(
        name=name, state=node_service_pb2.NODE_STATE_CREATED, deleted_at=deleted_at
    )
    if deleted_at:
        record.state = node_service_pb2.NODE_STATE_DELETED
    assert await stores.store.commit(
        [Put(key("node", name), record.SerializeToString()), Put(presence_key(name), b"")]
    )
    return name


async def a_blob(stores: Stores, *locations: str) -> str:
    blob = artifact_pb2.Blob(
        uuid=str(uuid.uuid4()), state=artifact_pb2.BLOB_STATE_CREATED, locations=locations
    )
    record = records_pb2.BlobRecord(blob=blob)
    assert await stores.store.commit([Put(key("blob", blob.uuid), record.SerializeToString())])
    return blob.uuid


async def test_a_deleted_node_ends_its_instances_and_leaves_its_blobs(stores: Stores) -> None:
    node = await a_node(stores)
    running = await placed(stores, states.CREATED, node=node)
    waiting = await placed(stores, states.DELETE_WAIT, node=node)
    elsewhere = await placed(stores, states.CREATED, node=f"{node}-other")
    blob = await a_blob(stores, node, "other")
    nodes = NodeStore(stores.store)
    found = await nodes.find(node)
    record = records_pb2.NodeRecord()
    record.CopyFrom(found.record)
    assert rules.mark_deleted(record, time.time())
    assert await nodes.delete(found, record)
    assert await stores.store.get(presence_key(node)) is None  # how the scheduler hears
    assert await retirement(stores).retire(node) == 3
    for made in (running, waiting):
        assert (await stored(stores, made)).record.instance.state == states.DELETED
        assert await held(stores, made) == []
    assert (await stored(stores, elsewhere)).record.instance.state == states.CREATED
    assert len(await held(stores, elsewhere)) == 3
    kept = await ArtifactStore(stores.store).get_blob(blob)
    assert kept is not None and list(kept.record.blob.locations) == ["other"]
    assert await retirement(stores).retire(node) == 0  # again: nothing left


async def test_the_sweep_finishes_a_deletion_then_marks_it_retired(stores: Stores) -> None:
    now = time.time()
    node = await a_node(stores, deleted_at=now)  # the api died after the record
    left = await placed(stores, states.CREATED, node=node)
    sweeping = retirement(stores)
    await sweeping.sweep(now)
    assert (await stored(stores, left)).record.instance.state == states.DELETED
    await sweeping.sweep(now)  # nothing left, but a create may still land
    assert not (await NodeStore(stores.store).find(node)).record.retired_at
    late = now + rules.SETTLE_SECONDS
    await sweeping.sweep(late)
    assert (await NodeStore(stores.store).find(node)).record.retired_at == late
