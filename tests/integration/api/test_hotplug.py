"""services/api/instances/hotplug.py against a real etcd, with a node agent
played here: a hot-plugged NIC is reserved with its instance in one
transaction and answered `created` once plugged; every refusal and failure
(full network, taken address or MAC, another namespace's network or
instance, the instance's state, the node agent refusing or out of reach)
leaves the instance record, the reservations and the keys as they were; a
plug whose answer was lost is answered plugged; and a hot-plug whose api
died half-way is withdrawn, or kept when it was plugged, by a sweep."""

from __future__ import annotations

import ipaddress
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sfmesh.v1 import instance_pb2, instance_service_pb2, network_service_pb2, records_pb2

from services.api import sizes
from services.api.clients.events import Events
from services.api.clients.outbox import Outbox
from services.api.instances import hotplug_rules
from services.api.instances.cache import InstanceCache
from services.api.instances.hotplug import GRACE, KIND, Hotplug, hotplug_key
from services.api.instances.lookup import InstanceLookup
from services.api.networks import ipam
from services.api.networks.store import NetworkStore
from services.common import errors
from services.common import instance_states as states
from services.common.addresses import FLOATING, address_key, mac_key, reservation
from services.common.events import EventEmitter
from services.common.instance_store import InstanceStore
from services.common.interceptors import _caller, _request_id
from services.common.store import Delete, Put, Store, key, kind_prefix
from services.common.tokens import Caller

NAMESPACE, OTHER = f"hp-{uuid.uuid4().hex[:6]}", f"hpo-{uuid.uuid4().hex[:6]}"
POOL = ipaddress.IPv4Network("10.199.0.0/24")
"""This test's floating pool (the shared etcd's other tests use others)."""
Request = instance_service_pb2.AddInstanceInterfaceRequest
Spec = instance_pb2.NetworkSpec


@dataclass
class Agent:
    """The node agent, played: records a plug `created` (as PlugInterface
    does), or fails as told."""

    instances: InstanceStore
    failure: errors.SfmeshError | None = None
    plug_anyway: bool = False
    """Record the plug, then fail: an answer lost on its way back."""
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    async def plug_interface(
        self, node: str, *, instance_uuid: str, interface_uuid: str, request_id: str
    ) -> None:
        self.calls.append((node, instance_uuid, interface_uuid))
        if self.failure is None or self.plug_anyway:
            await self.plug(instance_uuid, interface_uuid)
        if self.failure is not None:
            raise self.failure

    async def plug(self, instance_uuid: str, interface_uuid: str) -> None:
        stored = await self.instances.get(instance_uuid)
        assert stored is not None

        def created(record: records_pb2.InstanceRecord) -> None:
            nic = hotplug_rules.find_nic(record.instance, interface_uuid)
            assert nic is not None and nic.state == instance_pb2.INTERFACE_STATE_INITIAL
            nic.state = instance_pb2.INTERFACE_STATE_CREATED

        await self.instances.update(stored, created)


@dataclass
class World:
    store: Store
    instances: InstanceStore
    networks: NetworkStore
    agent: Agent
    hotplug: Hotplug


@pytest.fixture
async def world(etcd: str, events: Events, emitter: EventEmitter) -> AsyncIterator[World]:
    store = Store(etcd)
    instances, networks = InstanceStore(store), NetworkStore(store, POOL)
    agent = Agent(instances)
    lookup = InstanceLookup(instances, InstanceCache(store))
    outbox = Outbox(store, emitter)
    hotplug = Hotplug(lookup, instances, networks, store, outbox, events, agent)
    _caller.set(Caller(namespace=NAMESPACE, key_name="k", nonce=""))
    _request_id.set(f"req-{uuid.uuid4().hex[:8]}")
    yield World(store, instances, networks, agent, hotplug)
    await store.close()


async def a_network(
    world: World, netblock: str, *, namespace: str = NAMESPACE, provide_nat: bool = False
) -> str:
    """A created network with its own addresses reserved, as CreateNetwork makes it."""
    network = network_service_pb2.Network(
        uuid=str(uuid.uuid4()),
        state=network_service_pb2.NETWORK_STATE_CREATED,
        name=f"net-{uuid.uuid4().hex[:6]}",
        namespace=namespace,
        netblock=netblock,
        provide_dhcp=True,
        provide_nat=provide_nat,
        vxlan_id=random.randint(1, 2**24 - 1),
    )
    held = [
        reservation(address, kind, ["network", network.uuid], time.time())
        for address, kind in ipam.held_by_network(ipam.parse_netblock(netblock))
    ]
    assert await world.networks.create(records_pb2.NetworkRecord(network=network), held)
    return network.uuid


async def an_instance(
    world: World,
    network_uuid: str,
    *,
    state: int = states.CREATED,
    power: int = instance_pb2.POWER_STATE_ON,
    namespace: str = NAMESPACE,
) -> str:
    """An instance on node `n1` with one NIC on `network_uuid` (.2, MAC
    02:00:00:00:00:02), its address and MAC reserved."""
    instance = instance_pb2.Instance(
        uuid=str(uuid.uuid4()),
        name=f"hp-{uuid.uuid4().hex[:6]}",
        namespace=namespace,
        node="n1",
        state=state,  # type: ignore[arg-type]
        power_state=power,  # type: ignore[arg-type]
    )
    block = ipam.parse_netblock((await network_record(world, network_uuid)).netblock)
    nic = instance.interfaces.add(
        uuid=str(uuid.uuid4()),
        state=instance_pb2.INTERFACE_STATE_CREATED,
        network_uuid=network_uuid,
        instance_uuid=instance.uuid,
        macaddr="02:00:00:00:00:02",
        ipv4=str(block.network_address + 2),
        order=0,
    )
    holder = ["instance", instance.uuid]
    held = {
        address_key(network_uuid, nic.ipv4): reservation(nic.ipv4, "instance", holder, 0),
        mac_key(network_uuid, nic.macaddr): reservation(nic.macaddr, "mac", holder, 0),
    }
    puts = [Put(at, record.SerializeToString(), 0) for at, record in held.items()]
    assert await world.instances.create(records_pb2.InstanceRecord(instance=instance), *puts)
    return instance.uuid


async def network_record(world: World, network_uuid: str) -> network_service_pb2.Network:
    stored = await world.networks.get(network_uuid)
    assert stored is not None
    return stored.record.network


async def snapshot(world: World, instance_uuid: str, *networks: str) -> dict[str, object]:
    """Everything a refused hot-plug must leave as it was."""
    stored = await world.instances.get(instance_uuid)
    assert stored is not None
    held = {
        n: sorted(a.reservation.address for a in await world.networks.addresses(n))
        for n in networks
    }
    return {
        "record": stored.record.SerializeToString(),
        "addresses": held,
        "macs": {n: sorted(await world.networks.macs(n)) for n in networks},
        "floating": sorted(a.reservation.address for a in await world.networks.addresses(FLOATING)),
        "hotplugs": [item.key async for item in world.store.list_prefix(kind_prefix(KIND))],
        "index": [
            nic.uuid
            for nic in stored.record.instance.interfaces
            if await world.store.get(key("interface", nic.uuid)) is None
        ],
    }


async def test_a_nic_is_reserved_plugged_and_answered_created(world: World) -> None:
    first = await a_network(world, "10.60.0.0/24")
    second = await a_network(world, "10.61.0.0/24")
    instance_uuid = await an_instance(world, first)
    spec = Spec(network_uuid=second, address="10.61.0.9", model=instance_pb2.NIC_MODEL_E1000)
    nic = await world.hotplug.add(Request(ref=instance_uuid, network=spec))

    assert (nic.state, nic.network_uuid, nic.ipv4, nic.order) == (
        instance_pb2.INTERFACE_STATE_CREATED,
        second,
        "10.61.0.9",
        1,
    )
    assert nic.model == instance_pb2.NIC_MODEL_E1000
    assert world.agent.calls == [("n1", instance_uuid, nic.uuid)]
    stored = await world.instances.get(instance_uuid)
    assert stored is not None
    assert [n.uuid for n in stored.record.instance.interfaces][1] == nic.uuid
    assert stored.record.instance.interfaces[1] == nic
    assert await world.store.get(address_key(second, "10.61.0.9")) is not None
    assert nic.macaddr in await world.networks.macs(second)
    assert (await world.store.get(key("interface", nic.uuid))) is not None
    assert await world.store.get(hotplug_key(nic.uuid)) is None
    holding = await world.instances.holding(nic.uuid)
    assert holding is not None and holding.record.instance.uuid == instance_uuid

    # By name too, with a drawn address; the next order follows the last.
    by_name = (await network_record(world, second)).name
    name = stored.record.instance.name
    drawn = await world.hotplug.add(Request(ref=name, network=Spec(network_uuid=by_name)))
    assert drawn.order == 2 and drawn.ipv4.startswith("10.61.0.")
    assert drawn.ipv4 not in ("10.61.0.9", "10.61.0.1")


async def test_refusals_leave_everything_as_it_was(world: World) -> None:
    net = await a_network(world, "10.62.0.0/29")  # .2 to .6 for guests
    theirs = await a_network(world, "10.63.0.0/24", namespace=OTHER)
    instance_uuid = await an_instance(world, net)
    before = await snapshot(world, instance_uuid, net, theirs)
    cases: list[tuple[Spec | None, type[errors.SfmeshError], str]] = [
        (Spec(network_uuid=net, address="10.62.0.2"), errors.Conflict, "address 10.62.0.2 in use"),
        (
            Spec(network_uuid=net, macaddress="02:00:00:00:00:02"),
            errors.Conflict,
            f"MAC address 02:00:00:00:00:02 in use on network {net}",
        ),
        (Spec(network_uuid=net, macaddress="03:00:00:00:00:01"), errors.InvalidArgument, ""),
        (Spec(network_uuid=net, address="10.9.9.9"), errors.InvalidArgument, ""),
        (Spec(network_uuid=theirs), errors.NotFound, f"network {theirs} not found"),
        (Spec(network_uuid=str(uuid.uuid4())), errors.NotFound, ""),
        (Spec(network_uuid=net, float=True), errors.Conflict, ""),  # no NAT
        (Spec(), errors.InvalidArgument, "network specification is missing network_uuid"),
        (None, errors.InvalidArgument, ""),
    ]
    for spec, kind, message in cases:
        request = (
            Request(ref=instance_uuid) if spec is None else Request(ref=instance_uuid, network=spec)
        )
        with pytest.raises(kind) as refused:
            await world.hotplug.add(request)
        assert not message or refused.value.message == message
    # The block full: 507, with the instance unchanged.
    for _ in range(4):
        await world.hotplug.add(Request(ref=instance_uuid, network=Spec(network_uuid=net)))
    full = await snapshot(world, instance_uuid, net, theirs)
    with pytest.raises(errors.InsufficientResources):
        await world.hotplug.add(Request(ref=instance_uuid, network=Spec(network_uuid=net)))
    assert await snapshot(world, instance_uuid, net, theirs) == full
    assert before != full
    assert len(world.agent.calls) == 4


async def test_another_namespaces_instance_is_not_found(world: World) -> None:
    net = await a_network(world, "10.64.0.0/24", namespace=OTHER)
    instance_uuid = await an_instance(world, net, namespace=OTHER)
    before = await snapshot(world, instance_uuid, net)
    with pytest.raises(errors.NotFound) as refused:
        await world.hotplug.add(Request(ref=instance_uuid, network=Spec(network_uuid=net)))
    assert refused.value.message == "instance not found"
    assert await snapshot(world, instance_uuid, net) == before
    assert world.agent.calls == []


@pytest.mark.parametrize(
    ("state", "power", "kind"),
    [
        (states.DELETED, instance_pb2.POWER_STATE_OFF, errors.NotFound),
        (states.CREATING, instance_pb2.POWER_STATE_UNSPECIFIED, errors.NotReady),
        (states.CREATED, instance_pb2.POWER_STATE_TRANSITION_TO_ON, errors.NotReady),
        (states.CREATED, instance_pb2.POWER_STATE_OFF, errors.Conflict),
        (states.CREATED, instance_pb2.POWER_STATE_PAUSED, errors.Conflict),
        (states.DELETE_WAIT, instance_pb2.POWER_STATE_ON, errors.Conflict),
        (states.ERROR, instance_pb2.POWER_STATE_OFF, errors.Conflict),
    ],
)
async def test_instances_that_cannot_take_a_nic_now_are_refused(
    world: World, state: int, power: int, kind: type[errors.SfmeshError]
) -> None:
    net = await a_network(world, "10.65.0.0/24")
    instance_uuid = await an_instance(world, net, state=state, power=power)
    before = await snapshot(world, instance_uuid, net)
    with pytest.raises(kind):
        await world.hotplug.add(Request(ref=instance_uuid, network=Spec(network_uuid=net)))
    assert await snapshot(world, instance_uuid, net) == before
    assert world.agent.calls == []


@pytest.mark.parametrize(
    "failure",
    [
        errors.Conflict("libvirt says no", reason="HYPERVISOR_REFUSED"),
        errors.Unavailable("the node agent is unavailable (UNAVAILABLE)"),
        errors.NotReady("instance is not ready (delete-wait)"),
    ],
)
async def test_a_failed_plug_is_withdrawn_with_all_it_held(
    world: World, failure: errors.SfmeshError
) -> None:
    net = await a_network(world, "10.66.0.0/24", provide_nat=True)
    instance_uuid = await an_instance(world, net)
    before = await snapshot(world, instance_uuid, net)
    world.agent.failure = failure
    spec = Spec(network_uuid=net, address="10.66.0.40", float=True)
    with pytest.raises(type(failure)) as failed:
        await world.hotplug.add(Request(ref=instance_uuid, network=spec))
    assert failed.value is failure
    assert len(world.agent.calls) == 1
    assert await snapshot(world, instance_uuid, net) == before
    (_, _, nic_uuid) = world.agent.calls[0]
    assert await world.store.get(key("interface", nic_uuid)) is None


async def test_a_plug_whose_answer_was_lost_is_answered_plugged(world: World) -> None:
    net = await a_network(world, "10.67.0.0/24")
    instance_uuid = await an_instance(world, net)
    world.agent.failure = errors.Unavailable("deadline exceeded")
    world.agent.plug_anyway = True
    nic = await world.hotplug.add(Request(ref=instance_uuid, network=Spec(network_uuid=net)))
    assert nic.state == instance_pb2.INTERFACE_STATE_CREATED
    stored = await world.instances.get(instance_uuid)
    assert stored is not None and stored.record.instance.interfaces[1].uuid == nic.uuid
    assert await world.store.get(hotplug_key(nic.uuid)) is None
    assert await world.store.get(address_key(net, nic.ipv4)) is not None


async def test_a_sweep_withdraws_what_a_dead_api_left_and_keeps_what_was_plugged(
    world: World,
) -> None:
    net = await a_network(world, "10.68.0.0/24")
    instance_uuid = await an_instance(world, net)
    before = await snapshot(world, instance_uuid, net)

    # The api died after its reservation: the NIC `initial`, its hot-plug key left.
    world.agent.failure = errors.Unavailable("the api died here")
    reserved, _ = await world.hotplug._reserve(  # the first step alone
        (await InstanceLookup(world.instances, InstanceCache(world.store)).resolve(instance_uuid)),
        Spec(network_uuid=net),
    )
    (nic,) = reserved.record.instance.interfaces[1:]
    plugged_later, _ = await world.hotplug._reserve(
        (await world.instances.get(instance_uuid)),  # type: ignore[arg-type]
        Spec(network_uuid=net),
    )
    (kept,) = plugged_later.record.instance.interfaces[2:]
    await world.agent.plug(instance_uuid, kept.uuid)  # its plug finished all the same

    assert await world.hotplug.sweep(GRACE) == 0  # within the grace: left to the request
    assert await world.store.get(hotplug_key(nic.uuid)) is not None
    assert await world.hotplug.sweep(0) == 1
    stored = await world.instances.get(instance_uuid)
    assert stored is not None
    assert [n.uuid for n in stored.record.instance.interfaces][1:] == [kept.uuid]
    assert await world.store.get(hotplug_key(nic.uuid)) is None
    assert await world.store.get(hotplug_key(kept.uuid)) is None
    assert await world.store.get(address_key(net, nic.ipv4)) is None
    assert await world.store.get(address_key(net, kept.ipv4)) is not None
    assert await world.store.get(key("interface", nic.uuid)) is None
    assert await world.hotplug.sweep(0) == 0

    # Withdrawing the kept one by hand brings back the instance as it was.
    stored = await world.instances.get(instance_uuid)
    assert stored is not None

    def unplugged(record: records_pb2.InstanceRecord) -> None:
        record.instance.interfaces[1].state = instance_pb2.INTERFACE_STATE_INITIAL

    await world.instances.update(stored, unplugged)
    await world.store.commit(
        [
            Put(
                hotplug_key(kept.uuid),
                records_pb2.HotplugRecord(
                    instance_uuid=instance_uuid, interface_uuid=kept.uuid, started_at=0
                ).SerializeToString(),
            )
        ]
    )
    assert await world.hotplug.sweep(0) == 1
    after = await snapshot(world, instance_uuid, net)
    assert after == before


async def test_a_nic_past_the_create_s_bounds_is_refused(world: World) -> None:
    """The create's bounds hold for hot-plugs too: `sizes.NETWORKS` NICs and
    `sizes.INSTANCE_RECORD_BYTES` of record."""
    net = await a_network(world, "10.69.0.0/24")
    instance_uuid = await an_instance(world, net)
    for _ in range(sizes.NETWORKS - 1):
        await world.hotplug.add(Request(ref=instance_uuid, network=Spec(network_uuid=net)))
    full = await snapshot(world, instance_uuid, net)
    with pytest.raises(errors.InvalidArgument) as refused:
        await world.hotplug.add(Request(ref=instance_uuid, network=Spec(network_uuid=net)))
    assert refused.value.message == "network may have at most 16 entries, not 17"
    assert await snapshot(world, instance_uuid, net) == full

    big_uuid = await an_instance(world, await a_network(world, "10.70.0.0/24"))
    stored = await world.instances.get(big_uuid)
    assert stored is not None

    def grown(record: records_pb2.InstanceRecord) -> None:
        record.instance.user_data = "u" * sizes.INSTANCE_RECORD_BYTES

    await world.instances.update(stored, grown)
    calls = len(world.agent.calls)
    with pytest.raises(errors.InvalidArgument, match="an instance record may be at most"):
        await world.hotplug.add(Request(ref=big_uuid, network=Spec(network_uuid=net)))
    assert len(world.agent.calls) == calls


async def test_a_sweep_goes_past_a_key_it_cannot_finish(world: World) -> None:
    net = await a_network(world, "10.71.0.0/24")
    instance_uuid = await an_instance(world, net)
    _, nic = await world.hotplug._reserve(
        (await world.instances.get(instance_uuid)),  # type: ignore[arg-type]
        Spec(network_uuid=net),
    )
    corrupt = hotplug_key("0-corrupt")  # listed before any uuid
    await world.store.commit([Put(corrupt, b"\xff not a record", 0)])
    try:
        assert await world.hotplug.sweep(0) == 1
        assert await world.store.get(hotplug_key(nic.uuid)) is None
        assert await world.store.get(corrupt) is not None  # left, logged
    finally:
        await world.store.commit([Delete(corrupt)])
