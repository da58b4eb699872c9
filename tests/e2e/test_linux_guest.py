"""What needs a real OS, through the whole mesh: the tiny Linux test guest
(guests/testguest) created over REST boots, reads the config drive the node
agent wrote, obeys the ACPI reboot of `POST /rebootsoft`, and when it powers
itself off, `power_state` follows."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import libvirt
import pytest

from devmesh.mesh import Mesh
from guests.serve import ImageServer
from guests.testguest import ensure_test_guest
from tests.e2e.test_vms import created, view, wait_for

pytestmark = pytest.mark.slow

BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "guests"
BOOT = re.compile(r"TESTGUEST BOOT kernel=\S+ boot_id=(\S+)")
BOOT_TIMEOUT = 120.0  # ~7 s under TCG; room for a busy machine


@pytest.fixture(scope="module")
def guest_url(image_server: ImageServer) -> str:
    """The test guest's raw image, served on loopback."""
    image = ensure_test_guest(BUILD_DIR)
    return image_server.publish("testguest.raw", image.read_bytes())


def console(rest: httpx.Client, uuid: str) -> str:
    reply = rest.get(f"/instances/{uuid}/consoledata", params={"length": -1})
    assert reply.status_code == 200, reply.text
    return reply.content.decode(errors="replace")


def test_the_linux_guest_reads_its_config_drive_and_obeys_acpi(
    rest: httpx.Client, mesh: Mesh, guest_url: str
) -> None:
    instance = created(rest, "linux-guest", disk=[{"size": 1, "base": guest_url}])
    uuid = instance["uuid"]
    assert instance["state"] == "created", instance.get("error_message")
    wait_for(lambda: "TESTGUEST READY" in console(rest, uuid), timeout=BOOT_TIMEOUT)
    log = console(rest, uuid)
    drive = re.search(r"TESTGUEST CONFIGDRIVE (.*)", log)
    assert drive is not None, log
    assert f"uuid={uuid}" in drive.group(1)
    assert "hostname=linux-guest" in drive.group(1)
    (first_boot,) = BOOT.findall(log)

    assert rest.post(f"/instances/{uuid}/rebootsoft").status_code == 200
    wait_for(lambda: len(BOOT.findall(console(rest, uuid))) == 2, timeout=BOOT_TIMEOUT)
    second_boot = BOOT.findall(console(rest, uuid))[1]
    assert second_boot != first_boot
    assert view(rest, uuid)["power_state"] == "on"

    # The guest powers itself off (ACPI power button, as a shutdown from
    # inside would): nobody asks the api, yet power_state follows.
    wait_for(lambda: "TESTGUEST READY" in console(rest, uuid).split(second_boot)[1], 60)
    conn = libvirt.open("qemu:///system")
    try:
        conn.lookupByName(f"sfmesh-{mesh.node_name}-{uuid}").shutdown()
    finally:
        conn.close()
    wait_for(lambda: view(rest, uuid)["power_state"] == "off", timeout=60)
    assert "TESTGUEST SHUTDOWN" in console(rest, uuid)
    assert rest.delete(f"/instances/{uuid}").status_code == 200
