"""services/node_agent/usage.py against the real libvirtd: one bulk call's
counters become `usage` events of this node's running instances only, NICs
keyed by the guest's MAC found through the tap's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import libvirt
import pytest
from sfmesh.v1 import event_pb2, instance_pb2, records_pb2

from services.common.instance_store import StoredInstance
from services.node_agent.hypervisor import Hypervisor
from services.node_agent.naming import domain_name
from services.node_agent.usage import UsageSampler
from tests.event_sinks import RecordedEvents

URI = "qemu:///system"
MAC = "52:54:00:5a:9e:01"


@pytest.fixture
def bridge() -> Iterator[str]:
    name = f"usg{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name], check=False)


@pytest.fixture
def conn() -> Iterator[libvirt.virConnect]:
    opened = libvirt.open(URI)
    yield opened
    opened.close()


def domain_xml(name: str, disk: Path, bridge: str) -> str:
    """A domain booting nothing from a blank qcow2, with one NIC on `bridge`."""
    return (
        f"<domain type='qemu'><name>{name}</name>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os><devices>"
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file='{disk}'/><target dev='vda' bus='virtio'/></disk>"
        f"<interface type='bridge'><mac address='{MAC}'/><source bridge='{bridge}'/>"
        "<model type='virtio'/></interface></devices></domain>"
    )


def record(instance: str) -> StoredInstance:
    made = instance_pb2.Instance(
        uuid=instance,
        disks=[instance_pb2.Disk(device="vda")],
        interfaces=[instance_pb2.Interface(macaddr=MAC.upper())],
    )
    return StoredInstance(records_pb2.InstanceRecord(instance=made), 1)


class Domains(NamedTuple):
    """Domains of node `node`: one running, one stopped, one running that
    etcd no longer places here; and one running of another node."""

    node: str
    running: str
    stopped: str
    leftover: str


@pytest.fixture
def domains(qemu_tmp: Path, bridge: str, conn: libvirt.virConnect) -> Iterator[Domains]:
    node, other = f"us-{uuid.uuid4().hex[:6]}", f"us-{uuid.uuid4().hex[:6]}"
    made = Domains(node, *(str(uuid.uuid4()) for _ in range(3)))
    owned = ((node, made.running), (node, made.leftover), (other, str(uuid.uuid4())))
    started = [
        conn.createXML(domain_xml(domain_name(o, i), blank(qemu_tmp, i), bridge)) for o, i in owned
    ]
    stopped = conn.defineXML(
        domain_xml(domain_name(node, made.stopped), blank(qemu_tmp, made.stopped), bridge)
    )
    yield made
    for domain in started:
        domain.destroy()
    stopped.undefine()


def blank(folder: Path, name: str) -> Path:
    disk = folder / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    return disk


async def test_running_instances_of_this_node_get_usage_events(domains: Domains) -> None:
    hypervisor = Hypervisor(URI, domains.node, observed=lambda *_: None, reconnected=lambda: None)
    placed = {uuid: record(uuid) for uuid in (domains.running, domains.stopped)}
    events = RecordedEvents()
    sampler = UsageSampler(hypervisor=hypervisor, lookup=placed.get, events=events, interval=1)
    try:
        assert await sampler.sample() == 1
    finally:
        await hypervisor.close()
    event = events.events[0]
    assert (event.object_type, event.object_uuid) == ("instance", domains.running)
    assert (event.event_type, event.message) == (event_pb2.EVENT_TYPE_USAGE, "usage")
    assert event.extra["cpu usage"]["cpu time ns"] > 0
    vda = event.extra["disk usage"]["vda"]
    assert vda["actual bytes on disk"] > 0 and vda["errors"] == -1
    assert list(event.extra["network usage"]) == [MAC.upper()]  # as the record holds it
    assert set(event.extra["network usage"][MAC.upper()]) >= {"read bytes", "write packets"}


async def test_a_failing_sample_is_logged_and_the_next_one_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    away = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
    hypervisor = Hypervisor(away, "us-away", observed=lambda *_: None, reconnected=lambda: None)
    sampler = UsageSampler(
        hypervisor=hypervisor, lookup=lambda _: None, events=RecordedEvents(), interval=0.05
    )
    running = asyncio.create_task(sampler.run())
    with caplog.at_level(logging.WARNING, logger="sfmesh.node_agent"):
        await asyncio.sleep(0.5)
    try:
        assert not running.done()
        failed = [r for r in caplog.records if r.getMessage().startswith("usage sample failed")]
        assert len(failed) >= 2
        assert "cannot reach libvirt" in failed[-1].getMessage()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await hypervisor.close()
