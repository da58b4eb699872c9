"""Real VMs under faults: a node agent killed in the middle of a create, a
libvirtd restart, and a second node agent on the same machine."""

from __future__ import annotations

import functools
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import libvirt
import pytest

from devmesh.mesh import Mesh
from guests.bootsector import boot_sector
from guests.serve import ImageServer
from tests.e2e.conftest import extra_node_agent
from tests.e2e.test_vms import Hypervisor, created, view, wait_for

pytestmark = pytest.mark.slow

SPEC = {"cpus": 1, "memory": 128}


@pytest.fixture(scope="module")
def hypervisor(mesh: Mesh) -> Iterator[Hypervisor]:
    conn = libvirt.open("qemu:///system")
    yield Hypervisor(conn, mesh.node_name)
    conn.close()


def domains_of(uuid: str) -> list[str]:
    """Every libvirt domain, of any node agent, whose name carries `uuid`."""
    conn = libvirt.open("qemu:///system")
    try:
        return [d.name() for d in conn.listAllDomains() if uuid in d.name()]
    finally:
        conn.close()


def test_node_agent_killed_mid_create_resumes_it(
    rest: httpx.Client, mesh: Mesh, image_server: ImageServer
) -> None:
    # A slow image keeps the create in preflight long enough to kill it there.
    base = image_server.publish(f"slow-{uuid.uuid4().hex}.raw", boot_sector(), delay=2.0)
    reply = rest.post(
        "/instances", json={**SPEC, "name": "vm-killed", "disk": [{"size": 1, "base": base}]}
    )
    assert reply.status_code == 200, reply.text
    instance_uuid = reply.json()["uuid"]
    wait_for(lambda: view(rest, instance_uuid)["state"] == "preflight", timeout=10)
    mesh.stop_service("node_agent", signal.SIGKILL)
    mesh.start_service("node_agent")
    wait_for(lambda: view(rest, instance_uuid)["state"] == "created", timeout=30)
    assert len(domains_of(instance_uuid)) == 1  # no duplicate, no orphan
    # The fetch after the restart reported its progress on the instance.
    wait_for(
        lambda: any(
            event["message"].startswith(f"fetching image {base}: 512 bytes (100%)")
            for event in rest.get(f"/instances/{instance_uuid}/events").json()
        ),
        timeout=10,
    )
    rest.delete(f"/instances/{instance_uuid}")
    wait_for(lambda: not domains_of(instance_uuid))


def _restart_libvirtd() -> None:
    subprocess.run(["pkill", "-TERM", "-x", "libvirtd"], check=False)
    gone = ["pgrep", "-x", "libvirtd"]
    wait_for(lambda: subprocess.run(gone, check=False, capture_output=True).returncode != 0)
    subprocess.run(["libvirtd", "-d"], check=True)
    socket = Path("/var/run/libvirt/libvirt-sock")
    wait_for(lambda: socket.exists() and libvirt.open("qemu:///system").close() == 0)


def _stopped(domain: libvirt.virDomain) -> bool:
    """Stop `domain` if it runs; whether it is stopped. Right after a restart
    libvirtd may still be reattaching to qemu and refuse the destroy."""
    try:
        if domain.isActive():
            domain.destroy()
        return not domain.isActive()
    except libvirt.libvirtError:
        return False


def test_a_libvirtd_restart_is_survived(rest: httpx.Client, hypervisor: Hypervisor) -> None:
    instance_uuid = created(rest, "vm-libvirtd")["uuid"]
    _restart_libvirtd()
    conn = libvirt.open("qemu:///system")
    try:
        # Events flow again: the guest stopping is seen without anyone asking
        # (or, should libvirtd have stopped it while restarting, the resync
        # after the reconnect sees that).
        domain = conn.lookupByName(f"sfmesh-{hypervisor.node}-{instance_uuid}")
        wait_for(functools.partial(_stopped, domain))
    finally:
        conn.close()
    wait_for(lambda: view(rest, instance_uuid)["power_state"] == "off", timeout=15)
    assert rest.post(f"/instances/{instance_uuid}/poweron").status_code == 200
    assert view(rest, instance_uuid)["power_state"] == "on"
    rest.delete(f"/instances/{instance_uuid}")


@pytest.fixture
def second_node(mesh: Mesh) -> Iterator[str]:
    """Another node agent on this machine."""
    with extra_node_agent(mesh, f"{mesh.node_name}-b") as name:
        yield name


def test_two_node_agents_on_one_machine(rest: httpx.Client, mesh: Mesh, second_node: str) -> None:
    wait_for(lambda: _node_state(rest, second_node) == "created", timeout=15)
    here = created(
        rest, "vm-on-a", disk=[{"size": 1, "base": "debian:11"}], placed_on=mesh.node_name
    )
    there = created(rest, "vm-on-b", disk=[{"size": 1, "base": "debian:11"}], placed_on=second_node)
    assert (here["node"], there["node"]) == (mesh.node_name, second_node)
    assert (here["state"], there["state"]) == ("created", "created")
    assert domains_of(here["uuid"]) == [f"sfmesh-{mesh.node_name}-{here['uuid']}"]
    assert domains_of(there["uuid"]) == [f"sfmesh-{second_node}-{there['uuid']}"]
    # Each agent powers only what it hosts: the api finds the right one.
    assert rest.post(f"/instances/{there['uuid']}/poweroff").status_code == 200
    assert view(rest, there["uuid"])["power_state"] == "off"
    assert view(rest, here["uuid"])["power_state"] == "on"
    for made in (here, there):
        rest.delete(f"/instances/{made['uuid']}")
    wait_for(lambda: not domains_of(here["uuid"]) and not domains_of(there["uuid"]))


def _node_state(rest: httpx.Client, name: str) -> Any:
    reply = rest.get(f"/nodes/{name}")
    return reply.json().get("state") if reply.status_code == 200 else None


def test_affinity_and_anti_affinity_across_two_nodes(
    rest: httpx.Client, mesh: Mesh, second_node: str
) -> None:
    wait_for(lambda: _node_state(rest, second_node) == "created", timeout=15)
    disk = [{"size": 1, "base": "debian:11"}]
    tag = f"web-{uuid.uuid4().hex[:6]}"
    anchor = created(rest, "vm-anchor", disk=disk, placed_on=second_node, metadata={"tags": [tag]})
    near = created(rest, "vm-near", disk=disk, metadata={"affinity": {tag: 100}})
    away = created(rest, "vm-away", disk=disk, metadata={"affinity": {tag: -100}})
    assert anchor["node"] == near["node"] == second_node
    assert away["node"] == mesh.node_name
    events = rest.get(f"/instances/{away['uuid']}/events", params={"limit": -1}).json()
    step = next(e for e in events if e["message"] == "schedule have highest affinity")
    assert step["extra"]["candidates"] == [mesh.node_name]
    assert step["extra"]["dropped"] == {second_node: "affinity -100 < 0"}
    made = (anchor, near, away)
    for instance in made:
        rest.delete(f"/instances/{instance['uuid']}")
    wait_for(lambda: not any(domains_of(instance["uuid"]) for instance in made))
