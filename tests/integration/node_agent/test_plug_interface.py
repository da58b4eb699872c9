"""services/node_agent/hotplug.py against a real etcd and the real libvirtd:
a NIC the record holds `initial` is attached to the running domain and its
persistent definition, then recorded `created`; a refusal or a withdrawal
meanwhile leaves no device in the definition, the NIC's pin asked away and
the record as the api left it; devices no NIC names are unplugged.

The domains here have no disk and run no OS, so a live unplug (an ACPI
eject the guest must answer) never completes: what a detach leaves in the
persistent definition is checked, and the live one only after attaches.
The end-to-end test (tests/e2e/test_hot_plugged_nics.py) plugs into a real guest.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import libvirt
import pytest
from sfmesh.v1 import instance_pb2, records_pb2

from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import InstanceStore
from services.common.store import Store
from services.node_agent.hotplug import Hotplug
from services.node_agent.hypervisor import Hypervisor
from services.node_agent.naming import domain_name
from services.node_agent.nic_devices import interface_macs, interface_xml, source_bridge
from tests.event_sinks import RecordedEvents

URI = "qemu:///system"
NET = str(uuid.uuid4())
MAC = "02:00:00:12:34:56"


@dataclass
class Networks:
    """This node's networks, played: every network is on `bridge`; what
    each attach was asked to pin is kept; `during` runs inside attach."""

    bridge: str
    asked: list[list[str]] = field(default_factory=list)
    during: object = None

    async def attach(self, instance: instance_pb2.Instance, *, revision: int = 0) -> dict[str, str]:
        assert revision > 0  # a plug reads the record fresh
        self.asked.append(sorted(nic.macaddr for nic in instance.interfaces))
        if callable(self.during):
            await self.during()
        return {nic.network_uuid: self.bridge for nic in instance.interfaces}


@dataclass
class Node:
    name: str
    instances: InstanceStore
    hypervisor: Hypervisor
    networks: Networks
    events: RecordedEvents
    hotplug: Hotplug


@pytest.fixture(scope="module")
def bridge() -> Iterator[str]:
    name = f"sfht{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name], check=False)


@pytest.fixture
async def node(etcd: str, bridge: str) -> AsyncIterator[Node]:
    name = f"hp-{uuid.uuid4().hex[:6]}"
    store = Store(etcd)
    instances = InstanceStore(store)
    hypervisor = Hypervisor(URI, name, observed=lambda *_: None, reconnected=lambda: None)
    networks, events = Networks(bridge), RecordedEvents()
    hotplug = Hotplug(
        node=name, records=instances, networking=networks, hypervisor=hypervisor, emitter=events
    )
    yield Node(name, instances, hypervisor, networks, events, hotplug)
    conn = libvirt.open(URI)
    try:
        for domain in conn.listAllDomains():
            if domain.name().startswith(f"sfmesh-{name}-"):
                if domain.isActive():
                    domain.destroy()
                domain.undefine()
    finally:
        conn.close()
    await hypervisor.close()
    await store.close()


async def an_instance(node: Node, *, running: bool = True, nic_state: int = 1) -> str:
    """A created instance of `node` whose domain (no disk, no OS) is defined
    and running, and whose record holds one NIC (MAC `MAC`) in `nic_state`
    that the domain does not have yet."""
    instance = instance_pb2.Instance(
        uuid=str(uuid.uuid4()),
        state=states.CREATED,
        node=node.name,
        power_state=instance_pb2.POWER_STATE_ON,
    )
    instance.interfaces.add(
        uuid=str(uuid.uuid4()),
        state=nic_state,  # type: ignore[arg-type]
        network_uuid=NET,
        instance_uuid=instance.uuid,
        macaddr=MAC,
        order=0,
        model=instance_pb2.NIC_MODEL_VIRTIO,
    )
    assert await node.instances.create(records_pb2.InstanceRecord(instance=instance))
    xml = (
        f"<domain type='qemu'><name>{domain_name(node.name, instance.uuid)}</name>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>"
        "</domain>"
    )
    conn = libvirt.open(URI)
    try:
        domain = conn.defineXML(xml)
        if running:
            domain.create()
    finally:
        conn.close()
    return instance.uuid


def macs(node: Node, uuid_: str) -> tuple[set[str], set[str]]:
    """(live, persistent) MACs of the instance's domain."""
    conn = libvirt.open(URI)
    try:
        domain = conn.lookupByName(domain_name(node.name, uuid_))
        live = interface_macs(domain.XMLDesc(0)) if domain.isActive() else set()
        return live, interface_macs(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    finally:
        conn.close()


async def nic_of(node: Node, uuid_: str) -> instance_pb2.Interface | None:
    stored = await node.instances.get(uuid_)
    assert stored is not None
    return next(iter(stored.record.instance.interfaces), None)


async def test_a_nic_is_attached_live_and_persistently_then_recorded_created(node: Node) -> None:
    uuid_ = await an_instance(node)
    nic = await nic_of(node, uuid_)
    assert nic is not None
    await node.hotplug.plug(uuid_, nic.uuid)
    assert macs(node, uuid_) == ({MAC}, {MAC})
    plugged = await nic_of(node, uuid_)
    assert plugged is not None and plugged.state == instance_pb2.INTERFACE_STATE_CREATED
    assert node.networks.asked == [[MAC]]  # pinned before the attach
    assert "interface plugged" in node.events.messages(uuid_)
    assert node.events.messages(nic.uuid) == ["set attribute"]

    # Asked again (a retry): nothing more happens.
    await node.hotplug.plug(uuid_, nic.uuid)
    assert macs(node, uuid_) == ({MAC}, {MAC})
    assert node.networks.asked == [[MAC]]

    # A NIC the record names is no stray.
    stored = await node.instances.get(uuid_)
    assert stored is not None
    assert not await node.hotplug.remove_strays(stored)  # nothing left to look at again
    assert macs(node, uuid_) == ({MAC}, {MAC})
    assert len(node.hotplug._locks) == 0  # no lock kept for an instance at rest


async def test_a_refusal_is_undone_before_it_is_answered(node: Node) -> None:
    uuid_ = await an_instance(node)
    nic = await nic_of(node, uuid_)
    assert nic is not None
    node.networks.bridge = "sfhtnosuchbr"
    with pytest.raises(errors.Conflict) as refused:
        await node.hotplug.plug(uuid_, nic.uuid)
    assert refused.value.reason == "HYPERVISOR_REFUSED"
    assert "No such device" in refused.value.message
    assert macs(node, uuid_) == (set(), set())
    assert node.networks.asked == [[MAC], []]  # then asked to pin it no more
    assert await nic_of(node, uuid_) == nic  # still `initial`: the api withdraws it


async def test_refusals_before_any_work(node: Node) -> None:
    stopped = await an_instance(node, running=False)
    nic = await nic_of(node, stopped)
    assert nic is not None
    with pytest.raises(errors.Conflict):
        await node.hotplug.plug(stopped, nic.uuid)
    assert macs(node, stopped) == (set(), set())
    with pytest.raises(errors.Aborted):
        await node.hotplug.plug(stopped, str(uuid.uuid4()))
    with pytest.raises(errors.NotFound):
        await node.hotplug.plug(str(uuid.uuid4()), nic.uuid)
    failed = await an_instance(node, nic_state=instance_pb2.INTERFACE_STATE_ERROR)
    failed_nic = await nic_of(node, failed)
    assert failed_nic is not None
    with pytest.raises(errors.Aborted):
        await node.hotplug.plug(failed, failed_nic.uuid)


async def test_a_nic_withdrawn_while_it_is_plugged_is_unplugged(node: Node) -> None:
    uuid_ = await an_instance(node)
    nic = await nic_of(node, uuid_)
    assert nic is not None

    async def withdraw() -> None:
        stored = await node.instances.get(uuid_)
        assert stored is not None

        def without(record: records_pb2.InstanceRecord) -> None:
            del record.instance.interfaces[:]

        await node.instances.update(stored, without)

    node.networks.during = withdraw
    with pytest.raises(errors.Aborted):
        await node.hotplug.plug(uuid_, nic.uuid)
    assert macs(node, uuid_)[1] == set()  # the live unplug waits for a guest
    assert await nic_of(node, uuid_) is None


async def test_devices_no_nic_names_are_unplugged(node: Node) -> None:
    uuid_ = await an_instance(node, running=False)
    nic = await nic_of(node, uuid_)
    assert nic is not None
    conn = libvirt.open(URI)
    try:
        domain = conn.lookupByName(domain_name(node.name, uuid_))
        for mac in (MAC, "02:00:00:ab:cd:ef"):
            domain.attachDeviceFlags(
                f"<interface type='bridge'><mac address='{mac}'/>"
                f"<source bridge='{node.networks.bridge}'/><model type='virtio'/></interface>",
                libvirt.VIR_DOMAIN_AFFECT_CONFIG,
            )
    finally:
        conn.close()
    stored = await node.instances.get(uuid_)
    assert stored is not None
    assert not await node.hotplug.remove_strays(stored)  # nothing left to look at again
    assert macs(node, uuid_) == (set(), {MAC})
    assert node.events.messages(uuid_) == ["stray interface unplugged"]


async def test_a_device_of_the_mac_on_another_bridge_is_plugged_anew(node: Node) -> None:
    uuid_ = await an_instance(node)
    nic = await nic_of(node, uuid_)
    assert nic is not None
    conn = libvirt.open(URI)
    try:
        domain = conn.lookupByName(domain_name(node.name, uuid_))
        domain.attachDeviceFlags(  # left by a plug onto a bridge since replaced
            f"<interface type='bridge'><mac address='{MAC}'/>"
            "<source bridge='sfhtoldbr'/><model type='virtio'/></interface>",
            libvirt.VIR_DOMAIN_AFFECT_CONFIG,
        )
    finally:
        conn.close()
    await node.hotplug.plug(uuid_, nic.uuid)
    assert macs(node, uuid_) == ({MAC}, {MAC})
    conn = libvirt.open(URI)
    try:
        domain = conn.lookupByName(domain_name(node.name, uuid_))
        for dumped in (domain.XMLDesc(0), domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)):
            found = interface_xml(dumped, MAC)
            assert found is not None and source_bridge(found) == node.networks.bridge
    finally:
        conn.close()


async def test_a_stray_the_guest_holds_on_to_is_looked_at_again(node: Node) -> None:
    uuid_ = await an_instance(node)  # no OS: a live unplug never completes
    stray = "02:00:00:ab:cd:01"
    conn = libvirt.open(URI)
    try:
        domain = conn.lookupByName(domain_name(node.name, uuid_))
        domain.attachDeviceFlags(
            f"<interface type='bridge'><mac address='{stray}'/>"
            f"<source bridge='{node.networks.bridge}'/><model type='virtio'/></interface>",
            libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG,
        )
    finally:
        conn.close()
    stored = await node.instances.get(uuid_)
    assert stored is not None
    assert await node.hotplug.remove_strays(stored)  # still there: the reconciler retries
    assert macs(node, uuid_)[1] == set()
