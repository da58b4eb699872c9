"""Graphical consoles and screenshots end to end (issue 15, items 1 and 3):
each domain's VNC or SPICE console on a port its node agent chose, shown as
`vdi_port`, kept across power off/on and node agent restarts, moved when
taken at a start; the virt-viewer file through REST and `sf-client`; PNG
screenshots of the boot-sector guest through the official client, owned by
the instance's namespace."""

from __future__ import annotations

import configparser
import contextlib
import io
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import libvirt
import pytest
from PIL import Image
from shakenfist_client import apiclient

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from services.node_agent.graphics_ports import DEFAULT_PORTS
from tests.e2e.test_vms import BOOT, Hypervisor, created, view, wait_for
from tests.meshes import tenant

SF_CLIENT = str(Path(sys.executable).parent / "sf-client")


@pytest.fixture(scope="module")
def hypervisor(mesh: Mesh) -> Iterator[Hypervisor]:
    conn = libvirt.open("qemu:///system")
    yield Hypervisor(conn, mesh.node_name)
    conn.close()


@pytest.fixture(scope="module")
def client(mesh: Mesh, isolated_home: Path) -> apiclient.Client:
    """The official client as system, configured by ~/.shakenfist."""
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    return apiclient.Client(async_strategy=apiclient.ASYNC_CONTINUE)


def graphics_of(hypervisor: Hypervisor, uuid: str) -> ET.Element:
    """The graphics element of the instance's domain, as libvirt has it."""
    xml = hypervisor.domain(uuid).XMLDesc(0)
    found = ET.fromstring(xml).find("devices/graphics")
    assert found is not None, xml
    return found


def console_answers(port: int) -> bytes:
    """The first bytes the console at 127.0.0.1:`port` sends (VNC's banner;
    SPICE waits for the client, so nothing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.settimeout(2)
        try:
            return conn.recv(12)
        except TimeoutError:
            return b""


def running(rest: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    instance = created(rest, name, **fields)
    assert instance["state"] == "created", instance.get("error_message")
    return instance


def events_of(rest: httpx.Client, uuid: str) -> list[dict[str, Any]]:
    reply = rest.get(f"/instances/{uuid}/events")
    assert reply.status_code == 200, reply.text
    return list(reply.json())


def test_each_domain_gets_its_console_on_its_port(
    rest: httpx.Client, hypervisor: Hypervisor
) -> None:
    spice = running(rest, "console-spice")  # the default vdi
    vnc = running(rest, "console-vnc", video={"model": "cirrus", "memory": 16384, "vdi": "vnc"})
    for instance, kind in ((spice, "spice"), (vnc, "vnc")):
        port = instance["vdi_port"]
        assert port in DEFAULT_PORTS
        assert instance["console_port"] is None  # the serial console is a file
        assert instance["vdi_tls_port"] is None  # no SPICE TLS
        graphics = graphics_of(hypervisor, instance["uuid"])
        assert graphics.get("type") == kind
        assert graphics.get("port") == str(port)
        assert graphics.get("listen") == "127.0.0.1"
        assert graphics.get("tlsPort") is None
    assert spice["vdi_port"] != vnc["vdi_port"]
    assert console_answers(vnc["vdi_port"]).startswith(b"RFB 003.")
    console_answers(spice["vdi_port"])  # it accepts a connection

    uuid, port = vnc["uuid"], vnc["vdi_port"]
    for operation in ("poweroff", "poweron"):
        assert rest.post(f"/instances/{uuid}/{operation}").status_code == 200
    assert view(rest, uuid)["vdi_port"] == port  # kept across power off and on
    assert graphics_of(hypervisor, uuid).get("port") == str(port)

    for instance in (spice, vnc):
        assert rest.delete(f"/instances/{instance['uuid']}").status_code == 200
    wait_for(lambda: view(rest, uuid)["state"] == "deleted")
    assert view(rest, uuid)["vdi_port"] is None  # freed


VNC = {"video": {"model": "cirrus", "memory": 16384, "vdi": "vnc"}}


def all_running(rest: httpx.Client, names: list[str]) -> list[dict[str, Any]]:
    """Instances created at once, every other one with VNC (else SPICE),
    once every one of them runs."""
    uuids = []
    for n, name in enumerate(names):
        reply = rest.post("/instances", json={**BOOT, "name": name, **(VNC if n % 2 else {})})
        assert reply.status_code == 200, reply.text
        uuids.append(reply.json()["uuid"])

    def settled(uuid: str) -> dict[str, Any]:
        return dict(
            wait_for(lambda: (v := view(rest, uuid))["state"] in ("created", "error") and v, 120)
        )

    views = [settled(uuid) for uuid in uuids]
    assert all(v["state"] == "created" for v in views), [v.get("error_message") for v in views]
    return views


def test_ports_never_collide_across_twenty_and_survive_a_node_agent_restart(
    mesh: Mesh, rest: httpx.Client, hypervisor: Hypervisor
) -> None:
    before = all_running(rest, [f"ports-{n}" for n in range(12)])
    ports = {instance["uuid"]: instance["vdi_port"] for instance in before}
    assert len(set(ports.values())) == len(ports)

    mesh.stop_service("node_agent", signal.SIGKILL)
    mesh.start_service("node_agent")
    after = all_running(rest, [f"ports-after-{n}" for n in range(8)])
    for instance in after:
        ports[instance["uuid"]] = instance["vdi_port"]
    assert len(ports) == 20
    assert len(set(ports.values())) == len(ports)  # the records remembered them
    kinds = set()
    for uuid, port in ports.items():
        assert view(rest, uuid)["vdi_port"] == port
        graphics = graphics_of(hypervisor, uuid)
        assert graphics.get("port") == str(port)
        kinds.add(graphics.get("type"))
    assert kinds == {"vnc", "spice"}
    for uuid in ports:
        rest.delete(f"/instances/{uuid}")


def test_a_port_taken_meanwhile_is_moved_at_power_on(
    rest: httpx.Client, hypervisor: Hypervisor
) -> None:
    instance = running(rest, "console-clash", video={"model": "vga", "memory": 16384, "vdi": "vnc"})
    uuid, taken = instance["uuid"], instance["vdi_port"]
    assert rest.post(f"/instances/{uuid}/poweroff").status_code == 200
    with socket.create_server(("127.0.0.1", taken)):  # something else takes it
        reply = rest.post(f"/instances/{uuid}/poweron")
        assert reply.status_code == 200, reply.text
    moved = view(rest, uuid)
    assert moved["power_state"] == "on"
    assert moved["vdi_port"] != taken
    assert graphics_of(hypervisor, uuid).get("port") == str(moved["vdi_port"])
    assert console_answers(moved["vdi_port"]).startswith(b"RFB 003.")
    audits = [e for e in events_of(rest, uuid) if e["message"] == "console port moved"]
    assert audits
    assert audits[0]["extra"]["taken"] == taken
    assert audits[0]["extra"]["vdi_port"] == moved["vdi_port"]
    rest.delete(f"/instances/{uuid}")


def test_the_virt_viewer_file_through_rest_and_sf_client(
    rest: httpx.Client, client: apiclient.Client
) -> None:
    instance = running(
        rest, "console-vv", video={"model": "qxl", "memory": 65536, "vdi": "spiceconcurrent"}
    )
    uuid = instance["uuid"]
    reply = rest.get(f"/instances/{uuid}/vdiconsolehelper")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/x-virt-viewer"
    parser = configparser.ConfigParser()
    parser.read_string(reply.text)
    assert dict(parser["virt-viewer"]) == {
        "type": "spice",  # virt-viewer knows no spiceconcurrent
        "host": "127.0.0.1",
        "port": str(instance["vdi_port"]),
        "delete-this-file": "1",
    }
    assert client.get_vdi_console_helper(instance["name"]) == reply.text
    printed = subprocess.run(
        [SF_CLIENT, "instance", "vdiconsolefile", uuid, "--direct"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == reply.text + "\n"  # print() adds a line
    unknown = rest.request("GET", f"/instances/{uuid}/vdiconsolehelper", json={"tls": True})
    assert unknown.status_code == 400
    assert "tls" in unknown.json()["error"]
    rest.delete(f"/instances/{uuid}")


def test_screenshot_of_the_boot_sector_guest(
    rest: httpx.Client, client: apiclient.Client, isolated_home: Path
) -> None:
    instance = running(rest, "console-shot")
    uuid = instance["uuid"]
    # SeaBIOS has written its banner and "Booting from Hard Disk..." once
    # the guest's marker is on the serial console.
    wait_for(lambda: b"SFMESH BOOT OK" in rest.get(f"/instances/{uuid}/consoledata").content)
    png = b"".join(client.get_screenshot(uuid))
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert 320 <= width <= 2048 and 200 <= height <= 2048
        levels = image.convert("L")  # one byte per pixel
        assert len(set(levels.tobytes())) >= 2  # not one colour: text on a background
        top = levels.crop((0, 0, width, height // 4)).tobytes()
        bright = sum(1 for level in top if level > 128)
        assert bright > 50, "no text in the top quarter of the screen"

    written = isolated_home / "shot.png"
    done = subprocess.run(
        [SF_CLIENT, "instance", "screenshot", uuid, str(written)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with Image.open(written) as image:
        assert image.format == "PNG"

    shots = [e for e in events_of(rest, uuid) if e["message"] == "screenshot taken"]
    assert len(shots) == 2
    assert all(e["type"] == "audit" for e in shots)
    blob_uuid = shots[-1]["extra"]["blob_uuid"]  # newest first: the client's
    blob = rest.get(f"/blobs/{blob_uuid}").json()
    assert (blob["state"], blob["format"], blob["size"]) == ("created", "png", len(png))
    assert "request from REST API" in " ".join(e["message"] for e in events_of(rest, uuid))
    rest.delete(f"/instances/{uuid}")


def test_screenshots_belong_to_the_instance_s_namespace(
    mesh: Mesh, rest: httpx.Client, token: str
) -> None:
    with tenant(mesh, token, "shot-owner") as owner, tenant(mesh, token, "shot-other") as other:
        instance = running(owner, "owned-shot")
        uuid = instance["uuid"]
        reply = owner.get(f"/instances/{uuid}/screenshot")
        assert reply.status_code == 200, reply.text
        blob_uuid = reply.json()
        assert isinstance(blob_uuid, str)
        data = owner.get(f"/blobs/{blob_uuid}/data")
        assert data.status_code == 200 and data.content.startswith(b"\x89PNG")
        assert rest.get(f"/blobs/{blob_uuid}/data").content == data.content  # system reads it
        for path in (f"/instances/{uuid}/screenshot", f"/blobs/{blob_uuid}/data"):
            refused = other.get(path)
            assert refused.status_code == 404, (path, refused.text)
        assert other.get(f"/blobs/{blob_uuid}").status_code == 404
        owner.delete(f"/instances/{uuid}")


def test_screenshots_need_a_running_created_instance(rest: httpx.Client) -> None:
    instance = running(rest, "console-off")
    uuid = instance["uuid"]
    assert rest.post(f"/instances/{uuid}/poweroff").status_code == 200
    off = rest.get(f"/instances/{uuid}/screenshot")
    assert off.status_code == 406, off.text
    assert off.json()["error"] == f"instance {uuid} is not running"
    failed = created(rest, "console-error", disk=[{"size": 1, "base": "http://127.0.0.1:9/none"}])
    assert failed["state"] == "error"
    refused = rest.get(f"/instances/{failed['uuid']}/screenshot")
    assert refused.status_code == 406, refused.text
    assert refused.json()["error"] == f"instance {failed['uuid']} is not ready (error)"
    no_console = rest.get(f"/instances/{failed['uuid']}/vdiconsolehelper")
    assert no_console.status_code == 409, no_console.text
    for doomed in (uuid, failed["uuid"]):
        with contextlib.suppress(httpx.HTTPError):
            rest.delete(f"/instances/{doomed}")
