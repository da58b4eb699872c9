"""Instance NICs on real networks: addresses reserved at create (explicit,
random, none), refused when taken, outside the block or exhausted; the
tiny Linux guest gets its pinned address by DHCP on the node's bridge;
delete gives the addresses back, and a network waits for its last instance."""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import libvirt
import pytest

from devmesh.mesh import Mesh
from guests.serve import ImageServer
from guests.testguest import ensure_test_guest
from services.node_agent.dataplane import names
from services.node_agent.naming import domain_name
from tests.e2e.test_vms import created, view, wait_for

pytestmark = pytest.mark.slow

BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "guests"
BOOT_DISK = [{"size": 1, "base": "debian:11"}]
SPEC = {"cpus": 1, "memory": 128, "disk": BOOT_DISK}


def network(rest: httpx.Client, netblock: str, **fields: Any) -> dict[str, Any]:
    reply = rest.post(
        "/networks", json={"netblock": netblock, "name": f"n-{uuid.uuid4().hex[:6]}", **fields}
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def addresses(rest: httpx.Client, net: dict[str, Any]) -> dict[str, str]:
    listed = rest.get(f"/networks/{net['uuid']}/addresses").json()
    return {entry["address"]: entry["type"] for entry in listed}


def test_addresses_are_reserved_refused_and_given_back(rest: httpx.Client) -> None:
    net = network(rest, "10.251.7.0/29")  # 5 hosts: .1 is the gateway, .2 to .6 are free
    spec = {"cpus": 1, "memory": 128, "disk": BOOT_DISK}
    fixed = created(
        rest, "nic-fixed", **spec, network=[{"network_uuid": net["uuid"], "address": "10.251.7.3"}]
    )
    (nic,) = fixed["interfaces"]
    assert (nic["ipv4"], nic["order"], nic["state"]) == ("10.251.7.3", 0, "created")
    assert nic["macaddr"].startswith("02:00:00:")
    assert rest.get(f"/instances/{fixed['uuid']}/interfaces").json() == fixed["interfaces"]
    assert addresses(rest, net)["10.251.7.3"] == "instance"
    assert rest.get(f"/networks/{net['uuid']}/interfaces").json() == [nic]
    assert rest.get(f"/interfaces/{nic['uuid']}").json() == nic
    missing = rest.get("/interfaces/00000000-0000-4000-8000-000000000000")
    assert (missing.status_code, missing.json()["error"]) == (404, "interface not found")

    for address, status, message in (
        ("10.251.7.3", 409, "address 10.251.7.3 in use"),
        ("10.251.7.1", 409, "address 10.251.7.1 in use"),  # the gateway
        (
            "10.9.9.9",
            400,
            "network specification requests an address outside the range of the network",
        ),
    ):
        before = addresses(rest, net)
        reply = rest.post(
            "/instances",
            json={
                **spec,
                "name": "nic-refused",
                "network": [{"network_uuid": net["uuid"], "address": address}],
            },
        )
        assert reply.status_code == status, reply.text
        assert reply.json()["error"] == message
        assert addresses(rest, net) == before

    none = rest.post(
        "/instances",
        json={
            **spec,
            "name": "nic-none",
            "network": [{"network_uuid": net["uuid"], "address": "none"}],
        },
    )
    assert none.status_code == 200, none.text
    assert (
        "ipv4" not in none.json()["interfaces"][0] or none.json()["interfaces"][0]["ipv4"] is None
    )
    rest.delete(f"/instances/{none.json()['uuid']}")

    randoms = [
        rest.post(
            "/instances",
            json={**spec, "name": f"nic-r{i}", "network": [{"network_uuid": net["uuid"]}]},
        ).json()
        for i in range(4)
    ]
    assert sorted(r["interfaces"][0]["ipv4"] for r in randoms) == [
        "10.251.7.2",
        "10.251.7.4",
        "10.251.7.5",
        "10.251.7.6",
    ]
    full = rest.post(
        "/instances", json={**spec, "name": "nic-full", "network": [{"network_uuid": net["uuid"]}]}
    )
    assert full.status_code == 507
    assert full.json()["error"] == "No free addresses on network"

    # A network with instances on it waits for them, then goes.
    assert rest.delete(f"/networks/{net['uuid']}").json()["state"] == "delete-wait"
    for made in (fixed, *randoms):
        assert rest.delete(f"/instances/{made['uuid']}").status_code == 200
    gone = {made["uuid"] for made in (fixed, *randoms)}
    wait_for(lambda: all(view(rest, each)["state"] == "deleted" for each in gone))
    # The last instance's deleted and its release were one write: the network
    # went with it.
    assert view_network(rest, net)["state"] == "deleted"
    assert rest.get(f"/networks/{net['uuid']}/addresses").json() == []


def view_network(rest: httpx.Client, net: dict[str, Any]) -> dict[str, Any]:
    return dict(rest.get(f"/networks/{net['uuid']}").json())


def test_two_linux_guests_lease_their_pinned_addresses(
    rest: httpx.Client, image_server: ImageServer
) -> None:
    guest = image_server.publish("testguest-nics.raw", ensure_test_guest(BUILD_DIR).read_bytes())
    net = network(rest, "10.251.8.0/24")
    spec = {"cpus": 1, "memory": 128, "disk": [{"size": 1, "base": guest}]}
    one = rest.post(
        "/instances",
        json={
            **spec,
            "name": "lease-1",
            "network": [{"network_uuid": net["uuid"], "address": "10.251.8.23"}],
        },
    ).json()
    two = rest.post(
        "/instances", json={**spec, "name": "lease-2", "network": [{"network_uuid": net["uuid"]}]}
    ).json()
    try:
        for made in (one, two):
            nic = made["interfaces"][0]
            line = wait_for(functools.partial(lease_line, rest, made["uuid"]), timeout=120)
            assert f"mac={nic['macaddr']}" in line
            assert f"ip={nic['ipv4']}/24" in line
            assert "router=10.251.8.1" in line
        assert one["interfaces"][0]["ipv4"] == "10.251.8.23"
    finally:
        for made in (one, two):
            rest.delete(f"/instances/{made['uuid']}")
        rest.delete(f"/networks/{net['uuid']}")


def lease_line(rest: httpx.Client, instance_uuid: str) -> str | None:
    console = rest.get(f"/instances/{instance_uuid}/consoledata", params={"length": -1}).content
    found = re.search(r"TESTGUEST LEASE [^\r\n]*", console.decode(errors="replace"))
    return found.group(0) if found else None


def test_a_restarted_agent_takes_down_networks_left_without_instances(
    rest: httpx.Client, mesh: Mesh
) -> None:
    """An instance deleted while its node agent was down: once back, the
    agent removes the domain and also the network's bridge and namespace."""
    net = network(rest, "10.251.13.0/24")
    made = created(rest, "nic-orphan", **SPEC, network=[{"network_uuid": net["uuid"]}])
    pieces = names(mesh.node_name, net["vxlan_id"])
    assert link_exists(pieces.bridge)
    mesh.stop_service("node_agent", signal.SIGKILL)
    try:
        assert rest.delete(f"/instances/{made['uuid']}").status_code == 200
    finally:
        mesh.start_service("node_agent")
    wait_for(lambda: not link_exists(pieces.bridge), timeout=30)
    assert not Path("/run/netns", pieces.netns).exists()
    # The node says so on the network.
    wait_for(lambda: node_status(rest, net)[:1] == ["removed network from hypervisor"])
    assert node_status(rest, net) == [
        "removed network from hypervisor",
        "created network on hypervisor",
    ]
    rest.delete(f"/networks/{net['uuid']}")


def test_an_address_is_given_back_only_once_its_instance_is_deleted(
    rest: httpx.Client, mesh: Mesh
) -> None:
    """Deleted while its node agent is down, an instance waits in delete-wait,
    its domain running and its address held; once the agent is back it tears
    the domain down, and only then is the instance deleted and the address
    free."""
    net = network(rest, "10.251.19.0/24")
    address = "10.251.19.9"
    asking = {**SPEC, "network": [{"network_uuid": net["uuid"], "address": address}]}
    made = created(rest, "nic-waits", **asking)
    mesh.stop_service("node_agent", signal.SIGKILL)
    try:
        assert rest.delete(f"/instances/{made['uuid']}").status_code == 200
        time.sleep(2)  # ample time for a delete that would not wait
        assert view(rest, made["uuid"])["state"] == "delete-wait"
        assert domain_exists(mesh, made["uuid"])
        assert addresses(rest, net)[address] == "instance"
        reuse = rest.post("/instances", json={**asking, "name": "nic-reuse"})
        assert (reuse.status_code, reuse.json()["error"]) == (409, f"address {address} in use")
    finally:
        mesh.start_service("node_agent")
    wait_for(lambda: view(rest, made["uuid"])["state"] == "deleted", timeout=60)
    assert not domain_exists(mesh, made["uuid"])
    assert address not in addresses(rest, net)
    again = created(rest, "nic-reuse", **asking)
    assert again["interfaces"][0]["ipv4"] == address
    rest.delete(f"/instances/{again['uuid']}")
    rest.delete(f"/networks/{net['uuid']}")


def domain_exists(mesh: Mesh, instance_uuid: str) -> bool:
    """Whether libvirt has the instance's domain, running or not."""
    conn = libvirt.open("qemu:///system")
    try:
        conn.lookupByName(domain_name(mesh.node_name, instance_uuid))
        return True
    except libvirt.libvirtError:
        return False
    finally:
        conn.close()


def node_status(rest: httpx.Client, net: dict[str, Any]) -> list[str]:
    """The network's status events of this node, newest first."""
    events = rest.get(f"/networks/{net['uuid']}/events", params={"event_type": "status"}).json()
    return [event["message"] for event in events]


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def test_a_mac_is_unique_within_its_network(rest: httpx.Client) -> None:
    one, two = network(rest, "10.251.14.0/24"), network(rest, "10.251.15.0/24")
    mac = "52:54:00:5f:0e:01"
    first = created(
        rest, "mac-1", **SPEC, network=[{"network_uuid": one["uuid"], "macaddress": mac}]
    )
    try:
        assert first["interfaces"][0]["macaddr"] == mac
        before = addresses(rest, one)
        again = rest.post(
            "/instances",
            json={
                **SPEC,
                "name": "mac-2",
                "network": [{"network_uuid": one["uuid"], "macaddress": mac.upper()}],
            },
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"] == f"MAC address {mac} in use on network {one['uuid']}"
        assert addresses(rest, one) == before
        bad = rest.post(
            "/instances",
            json={
                **SPEC,
                "name": "mac-3",
                "network": [{"network_uuid": one["uuid"], "macaddress": "01:00:5e:00:00:01"}],
            },
        )
        assert (bad.status_code, bad.json()["error"]) == (
            400,
            "'01:00:5e:00:00:01' is not a unicast MAC address",
        )
        # Another network may use it, and the first one once it is free.
        elsewhere = created(
            rest, "mac-4", **SPEC, network=[{"network_uuid": two["uuid"], "macaddress": mac}]
        )
        rest.delete(f"/instances/{elsewhere['uuid']}")
    finally:
        rest.delete(f"/instances/{first['uuid']}")
    wait_for(lambda: view(rest, first["uuid"])["state"] == "deleted")  # then its MAC is free
    later = created(
        rest, "mac-5", **SPEC, network=[{"network_uuid": one["uuid"], "macaddress": mac}]
    )
    rest.delete(f"/instances/{later['uuid']}")
    for net in (one, two):
        rest.delete(f"/networks/{net['uuid']}")


def test_ping_from_a_network(rest: httpx.Client) -> None:
    net = network(rest, "10.251.18.0/24")
    empty = rest.get(f"/networks/{net['uuid']}/ping/10.251.18.1")
    assert empty.status_code == 409
    assert empty.json()["error"] == (
        f"no instance uses network {net['uuid']} yet, so no node carries it"
    )
    made = created(rest, "ping-src", **SPEC, network=[{"network_uuid": net["uuid"]}])
    try:
        answered = rest.get(f"/networks/{net['uuid']}/ping/10.251.18.1")  # its own gateway
        assert answered.status_code == 200, answered.text
        assert "10 packets transmitted, 10 received" in "\n".join(answered.json()["stdout"])
        silent = rest.get(f"/networks/{net['uuid']}/ping/10.251.18.200").json()
        assert "100% packet loss" in "\n".join(silent["stdout"])
        for address, message in (
            ("nonsense", "invalid address"),
            ("10.9.9.9", "ping request for address outside network block"),
            ("fd00::1", "ping request for address outside network block"),
        ):
            refused = rest.get(f"/networks/{net['uuid']}/ping/{address}")
            assert (refused.status_code, refused.json()["error"]) == (400, message)
    finally:
        rest.delete(f"/instances/{made['uuid']}")
        rest.delete(f"/networks/{net['uuid']}")
