"""services/node_agent/egress.py against a real etcd: egress addresses are
reserved once per (network, node), found again, refused when the pool is
full, and given back."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator

import pytest
from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.addresses import FLOATING, address_key
from services.common.store import Delete, Store
from services.node_agent.egress import EgressAddresses

POOL = ipaddress.IPv4Network("10.254.3.0/29")  # .1 is the router: .2 to .6 are free


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    """A connection; the floating pool is emptied before and after."""
    connection = Store(etcd)

    async def empty() -> None:
        keys = [item.key async for item in connection.list_prefix(address_key(FLOATING, ""))]
        await connection.commit([Delete(k) for k in keys])

    await empty()
    yield connection
    await empty()
    await connection.close()


async def pool(store: Store) -> dict[str, list[str]]:
    """The floating pool's reservations: address -> [comment, *user]."""
    found = {}
    async for item in store.list_prefix(address_key(FLOATING, "")):
        held = records_pb2.AddressRecord.FromString(item.value).reservation
        found[held.address] = [held.comment, held.type, *held.user]
    return found


async def test_one_address_per_network_and_node(store: Store) -> None:
    a, b = EgressAddresses(store, "node-a", POOL), EgressAddresses(store, "node-b", POOL)
    net1, net2 = str(uuid.uuid4()), str(uuid.uuid4())

    first = await a.hold(net1)
    assert first == await a.hold(net1)  # found again, as after a restart
    assert ipaddress.IPv4Address(first) in POOL and first != "10.254.3.1"
    others = {await a.hold(net2), await b.hold(net1)}
    assert len({first, *others}) == 3
    assert (await pool(store))[first] == ["egress on node node-a", "gateway", "network", net1]

    await a.release(net1)
    held = await pool(store)
    assert first not in held and others <= set(held)
    await a.release(net1)  # nothing left: fine


async def test_concurrent_holds_never_share_and_a_full_pool_refuses(store: Store) -> None:
    nodes = [EgressAddresses(store, f"node-{i}", POOL) for i in range(5)]
    network = str(uuid.uuid4())
    held = await asyncio.gather(*(node.hold(network) for node in nodes))
    assert sorted(held) == [f"10.254.3.{i}" for i in range(2, 7)]
    with pytest.raises(errors.InsufficientResources):
        await EgressAddresses(store, "node-6", POOL).hold(network)
