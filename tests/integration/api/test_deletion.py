"""services/api/instances/deletion.py against a real etcd: an instance in `delete-wait`
ends only once its node agent has torn it down, and then `deleted` and the
release of everything it held land together; what ended while the api was
away is finished when it comes back, or by the purge's sweep."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sfmesh.v1 import artifact_pb2, instance_pb2, network_service_pb2, records_pb2

from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.clients.outbox import Outbox
from services.api.instances.deletion import Finisher
from services.api.instances.idempotency import IdempotencyKeys
from services.api.instances.purge import purge_once
from services.api.networks.store import NetworkStore
from services.common import errors
from services.common import instance_states as states
from services.common.addresses import FLOATING, address_key, mac_key, reservation
from services.common.events import EventEmitter
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.store import Put, Store, key

NOW = time.time()


@dataclass
class Stores:
    store: Store
    instances: InstanceStore
    networks: NetworkStore
    finisher: Finisher


@pytest.fixture
async def stores(etcd: str, events: Events, emitter: EventEmitter) -> AsyncIterator[Stores]:
    store = Store(etcd)
    instances, networks = InstanceStore(store), NetworkStore(store)
    outbox = Outbox(store, emitter)
    finisher = Finisher(instances, networks, events, ArtifactStore(store), outbox)
    yield Stores(store, instances, networks, finisher)
    await store.close()


@dataclass
class Placed:
    """An instance on a network in `delete-wait`, and the keys it holds."""

    instance_uuid: str
    network_uuid: str
    held: list[bytes]


async def placed(stores: Stores, state: int, *, torn_down: bool = False, node: str = "n") -> Placed:
    """An instance on `node` with a NIC holding an address, a MAC and a
    floating address, on a network waiting for its last instance."""
    network = network_service_pb2.Network(
        uuid=str(uuid.uuid4()),
        state=network_service_pb2.NETWORK_STATE_DELETE_WAIT,
        vxlan_id=int(uuid.uuid4().int % 10_000_000) + 1,
        netblock="10.3.0.0/24",
    )
    assert await stores.networks.create(records_pb2.NetworkRecord(network=network), [])
    instance = instance_pb2.Instance(uuid=str(uuid.uuid4()), node=node, state=state)  # type: ignore[arg-type]
    nic = instance.interfaces.add(
        uuid=str(uuid.uuid4()),
        network_uuid=network.uuid,
        ipv4="10.3.0.7",
        macaddr="02:00:00:00:00:07",
        floating=f"10.254.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 2}",
    )
    record = records_pb2.InstanceRecord(instance=instance, torn_down_at=NOW if torn_down else 0)
    holder = ["instance", instance.uuid]
    keys = {
        address_key(network.uuid, nic.ipv4): reservation(nic.ipv4, "instance", holder, NOW),
        mac_key(network.uuid, nic.macaddr): reservation(nic.macaddr, "instance", holder, NOW),
        address_key(FLOATING, nic.floating): reservation(
            nic.floating, "floating", ["networkinterface", nic.uuid], NOW
        ),
    }
    puts = [Put(at, held.SerializeToString(), 0) for at, held in keys.items()]
    assert await stores.instances.create(record, *puts)
    return Placed(instance.uuid, network.uuid, list(keys))


async def held(stores: Stores, made: Placed) -> list[bytes]:
    return [at for at in made.held if await stores.store.get(at) is not None]


async def stored(stores: Stores, made: Placed) -> StoredInstance:
    found = await stores.instances.get(made.instance_uuid)
    assert found is not None
    return found


async def tear_down(stores: Stores, made: Placed) -> None:
    """What the node agent writes once the domain, disks and its share of
    networks are gone."""

    def torn_down(record: records_pb2.InstanceRecord) -> None:
        record.torn_down_at = time.time()
        record.instance.power_state = instance_pb2.POWER_STATE_OFF

    await stores.instances.update(await stored(stores, made), torn_down)


async def until_deleted(stores: Stores, made: Placed, within: float = 5.0) -> StoredInstance:
    deadline = time.monotonic() + within
    while (found := await stored(stores, made)).record.instance.state != states.DELETED:
        assert time.monotonic() < deadline, "never deleted"
        await asyncio.sleep(0.02)
    return found


@contextlib.asynccontextmanager
async def finishing(stores: Stores) -> AsyncIterator[None]:
    task = asyncio.create_task(stores.finisher.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def assert_ended(stores: Stores, made: Placed) -> None:
    """`deleted`, with everything it held given back, and its network gone."""
    record = (await until_deleted(stores, made)).record
    assert record.deleted_at > 0
    assert record.instance.power_state == instance_pb2.POWER_STATE_OFF
    assert [nic.state for nic in record.instance.interfaces] == [
        instance_pb2.INTERFACE_STATE_DELETED
    ]
    assert await held(stores, made) == []
    network = await stores.networks.get(made.network_uuid)
    assert network is not None
    assert network.record.network.state == network_service_pb2.NETWORK_STATE_DELETED


async def test_delete_wait_ends_once_torn_down_with_its_addresses(stores: Stores) -> None:
    made = await placed(stores, states.DELETE_WAIT)
    async with finishing(stores):
        await asyncio.sleep(0.5)  # the follower has seen it: not torn down, so it waits
        assert (await stored(stores, made)).record.instance.state == states.DELETE_WAIT
        assert await held(stores, made) == made.held
        await tear_down(stores, made)
        await assert_ended(stores, made)


async def test_deleted_and_the_release_land_in_one_transaction(stores: Stores) -> None:
    """`deleted` is written at the very revision its reservations go: no
    reader ever sees it while one is still held."""
    made = await placed(stores, states.DELETE_WAIT, torn_down=True)
    revision = (await stores.store.snapshot(key("instance", made.instance_uuid))).revision
    gone: dict[bytes, int] = {}
    deleted: set[int] = set()
    async with finishing(stores):
        async for change in stores.store.watch_prefix(b"/sfmesh/v1/", start_revision=revision + 1):
            if change.value is None:
                gone[change.key] = change.mod_revision
            elif change.key == key("instance", made.instance_uuid):
                record = records_pb2.InstanceRecord.FromString(change.value)
                if record.instance.state == states.DELETED:
                    deleted.add(change.mod_revision)
            if deleted and set(made.held) <= set(gone):
                break
    assert {gone[at] for at in made.held} == deleted


async def test_a_teardown_finished_while_the_api_was_down_ends_when_it_starts(
    stores: Stores,
) -> None:
    made = await placed(stores, states.DELETE_WAIT, torn_down=True)
    async with finishing(stores):
        await assert_ended(stores, made)


async def test_the_purge_sweep_finishes_only_what_was_torn_down(stores: Stores) -> None:
    done = await placed(stores, states.DELETE_WAIT, torn_down=True)
    waiting = await placed(stores, states.DELETE_WAIT)
    live = await placed(stores, states.CREATED)
    keys = IdempotencyKeys(stores.store)
    await purge_once(
        stores.instances, keys, stores.networks, stores.finisher, retention=3600, now=time.time()
    )
    await assert_ended(stores, done)
    for made, state in ((waiting, states.DELETE_WAIT), (live, states.CREATED)):
        assert (await stored(stores, made)).record.instance.state == state
        assert await held(stores, made) == made.held


async def unplaced(stores: Stores, state: int) -> StoredInstance:
    """An instance never placed (no node), in `state`."""
    instance = instance_pb2.Instance(uuid=str(uuid.uuid4()), state=state)  # type: ignore[arg-type]
    assert await stores.instances.create(records_pb2.InstanceRecord(instance=instance))
    found = await stores.instances.get(instance.uuid)
    assert found is not None
    return found


async def test_deleting_an_unplaced_instance_tells_gone_from_may_not(stores: Stores) -> None:
    """A delete request (`asking`) that cannot end an unplaced instance says
    why: 409 when its state may not move to `deleted`, 404 when another
    writer deleted it meanwhile; neither writes anything."""
    stuck = await unplaced(stores, states.DELETE_WAIT_ERROR)
    with pytest.raises(errors.Conflict, match="cannot be deleted from its current state"):
        await stores.finisher.finish(stuck, asking=True)
    assert await stores.instances.get(stuck.record.instance.uuid) == stuck

    seen = await unplaced(stores, states.INITIAL)
    assert await stores.finisher.finish(seen, asking=True)  # another writer, first
    with pytest.raises(errors.NotFound, match="instance not found"):
        await stores.finisher.finish(seen, asking=True)  # read before that delete


async def blob(stores: Stores, refs: int, parent: str = "") -> str:
    """A created blob held `refs` times (a thin one over `parent`)."""
    name = str(uuid.uuid4())
    view = artifact_pb2.Blob(uuid=name, state=artifact_pb2.BLOB_STATE_CREATED, reference_count=refs)
    if parent:
        view.depends_on = parent
    record = records_pb2.BlobRecord(blob=view)
    assert await stores.store.commit([Put(key("blob", name), record.SerializeToString(), 0)])
    return name


async def blob_state(stores: Stores, name: str) -> tuple[int, int]:
    item = await stores.store.get(key("blob", name))
    assert item is not None
    view = records_pb2.BlobRecord.FromString(item.value).blob
    return view.state, view.reference_count


async def test_a_thin_disk_let_go_of_cascades_to_its_parent(stores: Stores) -> None:
    """Reference §9.3: a thin blob reaching 0 lets go of its parent, in the
    transaction that ends the instance; a parent held elsewhere stays."""
    alone, shared = await blob(stores, 1), await blob(stores, 2)
    child_of_alone = await blob(stores, 1, parent=alone)
    child_of_shared = await blob(stores, 1, parent=shared)
    made = await placed(stores, states.DELETE_WAIT, torn_down=True)

    def disks(record: records_pb2.InstanceRecord) -> None:
        record.instance.disks.add(device="vda", blob_uuid=child_of_alone)
        record.instance.disks.add(device="vdb", blob_uuid=child_of_shared)

    await stores.instances.update(await stored(stores, made), disks)
    async with finishing(stores):
        await assert_ended(stores, made)
    deleted, created = artifact_pb2.BLOB_STATE_DELETED, artifact_pb2.BLOB_STATE_CREATED
    assert await blob_state(stores, child_of_alone) == (deleted, 0)
    assert await blob_state(stores, alone) == (deleted, 0)
    assert await blob_state(stores, child_of_shared) == (deleted, 0)
    assert await blob_state(stores, shared) == (created, 1)
