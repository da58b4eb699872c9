"""services/node_agent/nic_devices.py and the pure parts of hotplug.py: the
device XML a hot-plug attaches (the same element the domain XML renders),
the MACs a domain holds, the element a detach names, and which devices are
strays. Pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sfmesh.v1 import instance_pb2

from services.node_agent.domain_xml import NicDevice
from services.node_agent.hotplug import nic_device, strays, without
from services.node_agent.nic_devices import (
    interface_macs,
    interface_xml,
    render_interface,
    source_bridge,
)

DOMAIN = """<domain type='qemu'><name>d</name><devices>
  <disk type='file' device='disk'><target dev='vda'/></disk>
  <interface type='bridge'><mac address='02:00:00:AA:00:01'/><source bridge='b1'/></interface>
  <interface type='bridge'><mac address='02:00:00:aa:00:02'/><source bridge='b2'/>
    <model type='e1000'/></interface>
</devices></domain>"""


def test_the_attached_device_is_the_domains_own_interface_element() -> None:
    element = ET.fromstring(render_interface(NicDevice("02:00:00:01:02:03", "virtio", "sfb1")))
    assert element.tag == "interface" and element.get("type") == "bridge"
    assert element.find("mac").get("address") == "02:00:00:01:02:03"  # type: ignore[union-attr]
    assert element.find("source").get("bridge") == "sfb1"  # type: ignore[union-attr]
    assert element.find("model").get("type") == "virtio"  # type: ignore[union-attr]


def test_an_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown NIC model"):
        render_interface(NicDevice("02:00:00:01:02:03", "tulip", "sfb1"))


def test_a_domains_macs_in_lower_case() -> None:
    assert interface_macs(DOMAIN) == {"02:00:00:aa:00:01", "02:00:00:aa:00:02"}
    assert interface_macs("<domain><devices/></domain>") == set()
    assert interface_macs("<domain/>") == set()


def test_the_element_a_detach_names() -> None:
    found = interface_xml(DOMAIN, "02:00:00:AA:00:02")
    assert found is not None
    element = ET.fromstring(found)
    assert element.find("source").get("bridge") == "b2"  # type: ignore[union-attr]
    assert interface_xml(DOMAIN, "02:00:00:aa:00:01") is not None
    assert interface_xml(DOMAIN, "02:00:00:aa:00:09") is None


def test_a_nics_device_and_its_default_model() -> None:
    nic = instance_pb2.Interface(macaddr="02:00:00:00:00:05", model=instance_pb2.NIC_MODEL_RTL8139)
    assert nic_device(nic, "sfb9") == NicDevice("02:00:00:00:00:05", "rtl8139", "sfb9")
    assert nic_device(instance_pb2.Interface(macaddr="m"), "b").model == "virtio"


def test_strays_are_the_devices_no_nic_names() -> None:
    instance = instance_pb2.Instance(uuid="i")
    instance.interfaces.add(uuid="a", macaddr="02:00:00:AA:00:01")
    assert strays(interface_macs(DOMAIN), instance) == {"02:00:00:aa:00:02"}
    instance.interfaces.add(uuid="b", macaddr="02:00:00:aa:00:02")
    assert strays(interface_macs(DOMAIN), instance) == set()
    left = without(instance, "a")
    assert [nic.uuid for nic in left.interfaces] == ["b"]
    assert len(instance.interfaces) == 2


def test_the_bridge_an_interface_is_on() -> None:
    found = interface_xml(DOMAIN, "02:00:00:aa:00:01")
    assert found is not None and source_bridge(found) == "b1"
    assert (
        source_bridge(render_interface(NicDevice("02:00:00:01:02:03", "virtio", "sfb1"))) == "sfb1"
    )
    assert source_bridge("<interface type='user'/>") is None
