"""Real VMs end to end: REST create → the node agent boots a qemu domain from
the boot-sector guest → every power operation shows in libvirt and in
`power_state` → delete leaves no domain and no file."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import libvirt
import pytest
from shakenfist_client import apiclient

from devmesh.mesh import Mesh
from guests.bootsector import MARKER

pytestmark = pytest.mark.slow

DISK = {"size": 1, "base": "debian:11"}
BOOT = {"cpus": 1, "memory": 128, "disk": [DISK]}


class Hypervisor:
    """This mesh's domains, read straight from libvirt."""

    def __init__(self, conn: libvirt.virConnect, node: str) -> None:
        self.conn = conn
        self.node = node

    def domain(self, uuid: str) -> libvirt.virDomain:
        return self.conn.lookupByName(f"sfmesh-{self.node}-{uuid}")

    def state(self, uuid: str) -> int | None:
        """virsh domstate, or None when there is no such domain."""
        try:
            return int(self.domain(uuid).state()[0])
        except libvirt.libvirtError:
            return None


@pytest.fixture(scope="module")
def hypervisor(mesh: Mesh) -> Iterator[Hypervisor]:
    conn = libvirt.open("qemu:///system")
    yield Hypervisor(conn, mesh.node_name)
    conn.close()


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll until `check` returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(0.1)


def view(rest: httpx.Client, uuid: str) -> dict[str, Any]:
    reply = rest.get(f"/instances/{uuid}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def created(rest: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    reply = rest.post("/instances", json={**BOOT, "name": name, **fields})
    assert reply.status_code == 200, reply.text
    uuid = reply.json()["uuid"]
    return dict(wait_for(lambda: (v := view(rest, uuid))["state"] in ("created", "error") and v))


def test_boot_power_and_delete(rest: httpx.Client, mesh: Mesh, hypervisor: Hypervisor) -> None:
    instance = created(rest, "vm-life")
    uuid = instance["uuid"]
    assert instance["state"] == "created", instance.get("error_message")
    assert instance["power_state"] == "on"
    assert instance["node"] == mesh.node_name
    assert [d["device"] for d in instance["disks"]] == ["vda", "vdb"]
    assert hypervisor.state(uuid) == libvirt.VIR_DOMAIN_RUNNING
    wait_for(lambda: MARKER in rest.get(f"/instances/{uuid}/consoledata").content, timeout=10)

    steps = [
        ("poweroff", "off", libvirt.VIR_DOMAIN_SHUTOFF),
        ("poweron", "on", libvirt.VIR_DOMAIN_RUNNING),
        ("pause", "paused", libvirt.VIR_DOMAIN_PAUSED),
        ("unpause", "on", libvirt.VIR_DOMAIN_RUNNING),
        ("reboothard", "on", libvirt.VIR_DOMAIN_RUNNING),
        ("rebootsoft", "on", libvirt.VIR_DOMAIN_RUNNING),
    ]
    for operation, power, libvirt_state in steps:
        reply = rest.post(f"/instances/{uuid}/{operation}")
        assert reply.status_code == 200, (operation, reply.text)
        # The answer comes once the record shows the new power state.
        assert view(rest, uuid)["power_state"] == power, operation
        assert hypervisor.state(uuid) == libvirt_state, operation
    assert view(rest, uuid)["state"] == "created"

    assert rest.delete(f"/instances/{uuid}").status_code == 200
    wait_for(lambda: hypervisor.state(uuid) is None)
    folder: Path = mesh.state_dir / "instances" / uuid
    wait_for(lambda: not folder.exists())
    wait_for(lambda: view(rest, uuid)["state"] == "deleted")
    assert view(rest, uuid)["power_state"] == "off"


def test_deleted_is_shown_only_once_the_domain_is_gone(
    rest: httpx.Client, mesh: Mesh, hypervisor: Hypervisor
) -> None:
    """DELETE answers at once; the instance waits in delete-wait while its
    node agent tears the domain down, and is deleted only after."""
    uuid = created(rest, "vm-honest")["uuid"]
    folder: Path = mesh.state_dir / "instances" / uuid
    assert rest.delete(f"/instances/{uuid}").json()["state"] == "created"
    seen = []
    deadline = time.monotonic() + 30
    while True:
        state = view(rest, uuid)["state"]  # read first: what it claims must hold after
        seen.append((state, hypervisor.state(uuid) is not None, folder.exists()))
        if state == "deleted":
            break
        assert state == "delete-wait" and time.monotonic() < deadline, seen[-1]
        time.sleep(0.01)
    # the answer came before the teardown ended (how far the node agent got
    # by the first look is its own pace: the domain may already be gone)
    assert seen[0][0] == "delete-wait"
    assert seen[-1] == ("deleted", False, False)
    events = wait_for(lambda: (e := events_of(rest, uuid)) and "delete disks complete" in e and e)
    assert events.index("delete request from REST API") < events.index("poweroff")
    assert events.index("poweroff") < events.index("delete disks complete")
    assert events.count("poweroff") == events.count("delete disks complete") == 1


def events_of(rest: httpx.Client, uuid: str) -> list[str]:
    """An instance's event messages, oldest first."""
    events = rest.get(f"/instances/{uuid}/events", params={"limit": -1}).json()
    return [event["message"] for event in reversed(events)]


def test_the_official_client_creates_reads_the_console_and_deletes(
    rest: httpx.Client, mesh: Mesh, hypervisor: Hypervisor
) -> None:
    client = apiclient.Client(base_url=mesh.gateway_url, namespace="system", key=mesh.system_key)
    # Its default strategy blocks until the instance is created.
    made = client.create_instance("vm-client", 1, 128, [], [dict(DISK)], None, None)
    assert made["state"] == "created"
    uuid = made["uuid"]
    assert hypervisor.state(uuid) == libvirt.VIR_DOMAIN_RUNNING
    url = f"/instances/{uuid}/consoledata"
    wait_for(lambda: MARKER in rest.get(url).content, timeout=10)
    whole = rest.get(url)
    assert whole.headers["content-type"] == "application/octet-stream"
    assert whole.content.endswith(MARKER + b"\r\n")
    assert rest.request("GET", url, json={"length": 4}).content == MARKER[-2:] + b"\r\n"
    client = apiclient.Client(base_url=mesh.gateway_url, namespace="system", key=mesh.system_key)
    assert MARKER.decode() in client.get_console_data(uuid)
    client.delete_console_data(uuid)
    assert rest.get(url).content == b""
    events = rest.get(f"/instances/{uuid}/events").json()
    assert "console log cleared" in [event["message"] for event in events]
    client.delete_instance(uuid)
    assert client.get_instance(uuid)["state"] == "deleted"
    wait_for(lambda: hypervisor.state(uuid) is None)


def test_guest_powering_itself_off_shows_off(rest: httpx.Client, hypervisor: Hypervisor) -> None:
    uuid = created(rest, "vm-self-off")["uuid"]
    # As if the guest shut down: qemu stops without the api asking.
    hypervisor.domain(uuid).destroy()
    wait_for(lambda: view(rest, uuid)["power_state"] == "off", timeout=10)
    rest.delete(f"/instances/{uuid}")


def test_image_404_puts_the_instance_in_error(
    rest: httpx.Client, image_server: Any, hypervisor: Hypervisor
) -> None:
    missing = image_server.url("no-such-image.raw")
    instance = created(rest, "vm-404", disk=[{"size": 1, "base": missing}])
    assert instance["state"] == "error"
    assert "404" in instance["error_message"]
    assert missing in instance["error_message"]
    assert hypervisor.state(instance["uuid"]) is None
    assert rest.delete(f"/instances/{instance['uuid']}").status_code == 200
