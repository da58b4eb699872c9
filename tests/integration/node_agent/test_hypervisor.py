"""services/node_agent/hypervisor.py against the real libvirtd (qemu:///system)."""

from __future__ import annotations

import uuid

import libvirt

from services.node_agent.hypervisor import Hypervisor
from services.node_agent.naming import domain_name

URI = "qemu:///system"


def defined(node: str, instance: str) -> None:
    """Define (not start) a disk-less domain for `instance` on `node`."""
    xml = (
        f"<domain type='qemu'><name>{domain_name(node, instance)}</name>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os></domain>"
    )
    conn = libvirt.open(URI)
    try:
        conn.defineXML(xml)
    finally:
        conn.close()


async def test_removing_a_stopped_domain_removes_it_at_the_first_try() -> None:
    # Undefining a stopped domain removes it at once; asking it afterwards
    # whether it runs failed with "Domain not found", so deleting a powered-off
    # instance failed its first pass and waited for the retry.
    node, instance = f"hv-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())
    defined(node, instance)
    hypervisor = Hypervisor(URI, node, observed=lambda *_: None, reconnected=lambda: None)
    try:
        assert await hypervisor.remove(instance) is True
        assert await hypervisor.state(instance) is None
        assert await hypervisor.remove(instance) is False
    finally:
        await hypervisor.close()
