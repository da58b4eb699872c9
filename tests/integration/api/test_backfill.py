"""services/api/networks/backfill.py against a real etcd: records written before NIC
keys existed get them, once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sfmesh.v1 import instance_pb2, records_pb2

from services.api.networks.backfill import DONE, backfill_nic_keys
from services.common import instance_states as states
from services.common.addresses import mac_key
from services.common.instance_store import InstanceStore
from services.common.store import Delete, Put, Store, key


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    connection = Store(etcd)
    await connection.commit([Delete(DONE)])
    yield connection
    await connection.commit([Delete(DONE)])
    await connection.close()


def old_record(state: int) -> records_pb2.InstanceRecord:
    """An instance with one NIC, as written before NIC keys existed."""
    instance = instance_pb2.Instance(uuid=str(uuid.uuid4()), state=state)  # type: ignore[arg-type]
    instance.interfaces.add(
        uuid=str(uuid.uuid4()), network_uuid=str(uuid.uuid4()), macaddr="02:00:00:aa:bb:cc"
    )
    return records_pb2.InstanceRecord(instance=instance)


async def test_missing_nic_keys_are_written_once(store: Store) -> None:
    live, gone = old_record(states.CREATED), old_record(states.DELETED)
    for made in (live, gone):
        at = key("instance", made.instance.uuid)
        assert await store.commit([Put(at, made.SerializeToString(), 0)])
    await backfill_nic_keys(store, InstanceStore(store))

    for made in (live, gone):
        nic = made.instance.interfaces[0]
        assert (await InstanceStore(store).holding(nic.uuid)) is not None
    live_nic, gone_nic = live.instance.interfaces[0], gone.instance.interfaces[0]
    held = await store.get(mac_key(live_nic.network_uuid, live_nic.macaddr))
    assert held is not None
    user = records_pb2.AddressRecord.FromString(held.value).reservation.user
    assert list(user) == ["instance", live.instance.uuid]
    assert await store.get(mac_key(gone_nic.network_uuid, gone_nic.macaddr)) is None
    assert await store.get(DONE) is not None

    # Once done, never again: a record still without keys stays so.
    late = old_record(states.CREATED)
    assert await store.commit(
        [Put(key("instance", late.instance.uuid), late.SerializeToString(), 0)]
    )
    await backfill_nic_keys(store, InstanceStore(store))
    assert await InstanceStore(store).holding(late.instance.interfaces[0].uuid) is None
