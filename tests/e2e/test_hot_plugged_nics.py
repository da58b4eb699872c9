"""Hot-plugged NICs (guest-access §6) through the whole mesh: `sf-client
instance add-interface` on a running Linux test guest gives it a second NIC
on a second network, which it leases by DHCP at its reserved address, and
which a power cycle keeps; refusals (a full network through the official
client's library, a node agent that cannot be reached) leave the
instance's interfaces, the networks' reservations, its node's DHCP pins and
the domain's devices as they were, and the guest running."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import libvirt
import pytest
from shakenfist_client import apiclient

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from guests.serve import ImageServer
from guests.testguest import ensure_test_guest
from services.node_agent.naming import domain_name
from services.node_agent.nic_devices import interface_macs
from tests.e2e.test_nics import addresses, network
from tests.e2e.test_vms import view, wait_for

pytestmark = pytest.mark.slow

BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "guests"
SF_CLIENT = str(Path(sys.executable).parent / "sf-client")
BOOT_TIMEOUT = 120.0
LEASE = re.compile(r"TESTGUEST LEASE iface=(\S+) mac=(\S+) ip=(\S+) router=(\S*)")
BOOT = re.compile(r"TESTGUEST BOOT ")


@pytest.fixture(scope="module")
def client(mesh: Mesh, isolated_home: Path) -> apiclient.Client:
    """The official client's library, configured as `make run` configures it."""
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    return apiclient.Client(async_strategy=apiclient.ASYNC_CONTINUE)


@pytest.fixture(scope="module")
def guest(
    mesh: Mesh, image_server: ImageServer, isolated_home: Path, token: str
) -> Iterator[dict[str, Any]]:
    """A running Linux test guest with one NIC, leased, on its own network
    (`guest["net"]`)."""
    url = image_server.publish("testguest-hotplug.raw", ensure_test_guest(BUILD_DIR).read_bytes())
    with httpx.Client(
        base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as rest:
        net = network(rest, "10.251.40.0/24")
        reply = rest.post(
            "/instances",
            json={
                "name": "hotplug-guest",
                "cpus": 1,
                "memory": 128,
                "disk": [{"size": 1, "base": url}],
                "network": [{"network_uuid": net["uuid"]}],
            },
        )
        assert reply.status_code == 200, reply.text
        uuid_ = reply.json()["uuid"]
        try:
            wait_for(lambda: "TESTGUEST READY" in console(rest, uuid_), timeout=BOOT_TIMEOUT)
            made = view(rest, uuid_)
            assert made["state"] == "created", made.get("error_message")
            assert [line[1] for line in leases(rest, uuid_)] == [made["interfaces"][0]["macaddr"]]
            yield {**made, "net": net}
        finally:
            rest.delete(f"/instances/{uuid_}")
            wait_for(lambda: view(rest, uuid_)["state"] == "deleted", timeout=60)
            rest.delete(f"/networks/{net['uuid']}")


def console(rest: httpx.Client, uuid_: str) -> str:
    reply = rest.get(f"/instances/{uuid_}/consoledata", params={"length": -1})
    assert reply.status_code == 200, reply.text
    return reply.content.decode(errors="replace")


def leases(rest: httpx.Client, uuid_: str) -> list[tuple[str, str, str, str]]:
    """Every LEASE line on the guest's console: (iface, mac, ip/prefix, router)."""
    return [tuple(found) for found in LEASE.findall(console(rest, uuid_))]  # type: ignore[misc]


def domain_macs(mesh: Mesh, uuid_: str) -> tuple[set[str], set[str]]:
    """The MACs of the domain's NICs: (live, persistent definition)."""
    conn = libvirt.open("qemu:///system")
    try:
        domain = conn.lookupByName(domain_name(mesh.node_name, uuid_))
        return (
            interface_macs(domain.XMLDesc(0)),
            interface_macs(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)),
        )
    finally:
        conn.close()


def pins(mesh: Mesh, net: dict[str, Any]) -> str:
    """The DHCP hosts file of a network's dnsmasq on the mesh's node."""
    path = mesh.state_dir / "networks" / net["uuid"] / "hosts"
    return path.read_text() if path.exists() else ""


def add_interface(*args: str) -> subprocess.CompletedProcess[str]:
    """`sf-client instance add-interface ARGS` (it prints nothing on success)."""
    return subprocess.run(
        [SF_CLIENT, "instance", "add-interface", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def state_of(
    rest: httpx.Client, mesh: Mesh, guest: dict[str, Any], net: dict[str, Any]
) -> dict[str, Any]:
    """What a refused hot-plug must leave as it was."""
    uuid_ = guest["uuid"]
    return {
        "interfaces": rest.get(f"/instances/{uuid_}/interfaces").json(),
        "addresses": [addresses(rest, guest["net"]), addresses(rest, net)],
        "pins": [pins(mesh, guest["net"]), pins(mesh, net)],
        "power_state": view(rest, uuid_)["power_state"],
    }


def test_a_hot_plugged_nic_is_leased_and_survives_a_power_cycle(
    rest: httpx.Client, mesh: Mesh, client: apiclient.Client, guest: dict[str, Any]
) -> None:
    uuid_ = guest["uuid"]
    first = guest["interfaces"][0]
    second_net = network(rest, "10.251.41.0/24")
    try:
        done = add_interface(uuid_, "-n", f"{second_net['uuid']}@10.251.41.77")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout == ""

        nics = client.get_instance_interfaces(uuid_)
        assert [nic["uuid"] for nic in nics[:1]] == [first["uuid"]]
        nic = nics[1]
        assert (nic["network_uuid"], nic["ipv4"], nic["order"]) == (
            second_net["uuid"],
            "10.251.41.77",
            1,
        )
        assert (nic["state"], nic["model"], nic["instance_uuid"]) == ("created", "virtio", uuid_)
        assert nic["macaddr"].startswith("02:00:00:")
        assert view(rest, uuid_)["interfaces"] == nics
        assert rest.get(f"/interfaces/{nic['uuid']}").json() == nic
        assert addresses(rest, second_net)["10.251.41.77"] == "instance"
        assert f"{nic['macaddr']},10.251.41.77" in pins(mesh, second_net)
        live, persistent = domain_macs(mesh, uuid_)
        assert live == persistent == {first["macaddr"], nic["macaddr"]}

        # The guest sees the new NIC and leases its reserved address.
        line = wait_for(
            lambda: [found for found in leases(rest, uuid_) if found[1] == nic["macaddr"]],
            timeout=60,
        )[0]
        assert line[2:] == ("10.251.41.77/24", "10.251.41.1")
        assert "TESTGUEST NOLEASE" not in console(rest, uuid_)

        events = [e["message"] for e in rest.get(f"/instances/{uuid_}/events").json()]
        for message in (
            "add interface request from REST API",
            "interface plugged",
            "interface added",
        ):
            assert message in events

        # A power cycle boots with both NICs: the persistent definition has it.
        assert rest.post(f"/instances/{uuid_}/poweroff").status_code == 200
        assert rest.post(f"/instances/{uuid_}/poweron").status_code == 200
        wait_for(lambda: len(BOOT.findall(console(rest, uuid_))) == 2, timeout=BOOT_TIMEOUT)
        wait_for(
            lambda: len(LEASE.findall(console(rest, uuid_).split("TESTGUEST BOOT ")[2])) == 2,
            timeout=BOOT_TIMEOUT,
        )
        after = console(rest, uuid_).split("TESTGUEST BOOT ")[2]
        assert {(mac, ip) for _, mac, ip, _ in LEASE.findall(after)} == {
            (first["macaddr"], f"{first['ipv4']}/24"),
            (nic["macaddr"], "10.251.41.77/24"),
        }
        assert domain_macs(mesh, uuid_) == (live, persistent)
    finally:
        rest.delete(f"/networks/{second_net['uuid']}")


def test_a_full_network_refuses_and_leaves_the_instance_as_it_was(
    rest: httpx.Client, mesh: Mesh, client: apiclient.Client, guest: dict[str, Any]
) -> None:
    full = network(rest, "10.251.42.0/29")  # five guest addresses
    filler = rest.post(
        "/instances",
        json={
            "name": "hotplug-filler",
            "cpus": 1,
            "memory": 128,
            "disk": [{"size": 1, "base": "debian:11"}],
            "network": [{"network_uuid": full["uuid"]}] * 5,
        },
    )
    assert filler.status_code == 200, filler.text
    try:
        wait_for(lambda: view(rest, filler.json()["uuid"])["state"] == "created", timeout=60)
        before = state_of(rest, mesh, guest, full)
        assert len(before["pins"][1].splitlines()) == 5
        domain_before = domain_macs(mesh, guest["uuid"])
        with pytest.raises(apiclient.InsufficientResourcesException):
            client.add_instance_interface(
                guest["uuid"],
                {"network_uuid": full["uuid"], "macaddress": None, "model": "virtio"},
            )
        # Taken addresses, MACs and bad input are refused the same way.
        first = guest["interfaces"][0]
        for spec, status, message in (
            (
                {"network_uuid": guest["net"]["uuid"], "address": first["ipv4"]},
                409,
                f"address {first['ipv4']} in use",
            ),
            (
                {"network_uuid": guest["net"]["uuid"], "macaddress": first["macaddr"]},
                409,
                f"MAC address {first['macaddr']} in use on network {guest['net']['uuid']}",
            ),
            ({"network_uuid": full["uuid"], "macaddress": "01:00:00:00:00:01"}, 400, None),
            ({"network_uuid": str(uuid.uuid4())}, 404, None),
            ({"network_uuid": full["uuid"], "colour": "red"}, 400, None),
        ):
            reply = rest.post(f"/instances/{guest['uuid']}/interfaces", json={"network": spec})
            assert reply.status_code == status, reply.text
            if message is not None:
                assert reply.json()["error"] == message
        reply = rest.post(f"/instances/{guest['uuid']}/interfaces", json={"net": {}})
        assert reply.status_code == 400, reply.text

        assert state_of(rest, mesh, guest, full) == before
        assert domain_macs(mesh, guest["uuid"]) == domain_before
        assert view(rest, guest["uuid"])["state"] == "created"
    finally:
        rest.delete(f"/instances/{filler.json()['uuid']}")
        wait_for(lambda: view(rest, filler.json()["uuid"])["state"] == "deleted", timeout=60)
        rest.delete(f"/networks/{full['uuid']}")


def test_an_unreachable_node_agent_gives_503_and_leaves_nothing(
    rest: httpx.Client, mesh: Mesh, guest: dict[str, Any]
) -> None:
    net = network(rest, "10.251.43.0/24")
    before = state_of(rest, mesh, guest, net)
    domain_before = domain_macs(mesh, guest["uuid"])
    mesh.stop_service("node_agent", signal.SIGKILL)
    try:
        reply = rest.post(
            f"/instances/{guest['uuid']}/interfaces",
            json={"network": {"network_uuid": net["uuid"]}},
        )
        assert reply.status_code == 503, reply.text
        assert state_of(rest, mesh, guest, net) == before
    finally:
        mesh.start_service("node_agent")
    try:
        wait_for(lambda: view(rest, guest["uuid"])["node_state"] == "created", timeout=60)
        assert domain_macs(mesh, guest["uuid"]) == domain_before
        assert pins(mesh, net) == ""
        assert state_of(rest, mesh, guest, net) == before
    finally:
        rest.delete(f"/networks/{net['uuid']}")
