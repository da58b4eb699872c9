"""NICs hot-plugged into and out of a domain: the device XML libvirt's
attach takes, and the MACs a domain's XML holds. Pure.

libvirt 9.0 with QEMU 7.2 plugs a `<interface type='bridge'>` into a running
`pc` (i440fx) domain through ACPI PCI hotplug, with `VIR_DOMAIN_AFFECT_LIVE |
VIR_DOMAIN_AFFECT_CONFIG` (the live domain and its persistent definition at
once: libvirt saves the definition only once the live attach succeeded).
A detach names the device by its MAC; the guest must let go of a live
device (ACPI eject), which libvirt waits a few seconds for.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from services.node_agent.domain_xml import NicDevice, interface_element


def render_interface(nic: NicDevice) -> str:
    """The device XML that attaches `nic`. Raises ValueError for an unknown
    model. Pure."""
    return ET.tostring(interface_element(nic), encoding="unicode")


def interface_macs(domain_xml: str) -> set[str]:
    """The MACs (lower case) of every `<interface>` in a domain's XML. Pure."""
    devices = ET.fromstring(domain_xml).find("devices")
    if devices is None:
        return set()
    found = set()
    for interface in devices.findall("interface"):
        mac = interface.find("mac")
        if mac is not None and mac.get("address"):
            found.add(mac.get("address", "").lower())
    return found


def interface_xml(domain_xml: str, mac: str) -> str | None:
    """The `<interface>` of a domain's XML with MAC `mac`, as its own
    document (what a detach names); None when it has none. Pure."""
    devices = ET.fromstring(domain_xml).find("devices")
    for interface in devices.findall("interface") if devices is not None else []:
        found = interface.find("mac")
        if found is not None and found.get("address", "").lower() == mac.lower():
            return ET.tostring(interface, encoding="unicode")
    return None


def source_bridge(interface: str) -> str | None:
    """The bridge an `<interface>` element (as its own document) is on;
    None when it names none. Pure."""
    source = ET.fromstring(interface).find("source")
    return source.get("bridge") if source is not None else None
