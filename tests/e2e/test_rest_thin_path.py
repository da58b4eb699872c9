"""A request through every layer: REST -> gateway -> api -> etcd and back."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from devmesh.mesh import Mesh
from guests.serve import ImageServer
from tests.e2e.test_vms import wait_for

pytestmark = pytest.mark.slow

INSTANCE_KEYS = {
    "uuid", "state", "metadata", "version", "cpus", "memory", "name", "namespace",
    "disk_spec", "ssh_key", "user_data", "video", "uefi", "configdrive", "nvram_template",
    "secure_boot", "machine_type", "side_channels", "agent_state", "agent_start_time",
    "agent_system_boot_time", "error_message", "console_port", "node", "power_state",
    "vdi_port", "vdi_tls_port", "interfaces", "disks", "node_state",
}  # fmt: skip

CREATE = {"name": "thin", "cpus": 1, "memory": 256, "disk": [{"size": 8, "base": "debian:11"}]}


def test_root_answers_without_auth(mesh: Mesh) -> None:
    reply = httpx.get(mesh.gateway_url)
    assert reply.status_code == 200
    assert "get-instance-namespace" in reply.text
    assert "events-by-type" in reply.text
    assert "list-addresses" in reply.text  # served by NetworkService
    assert "vdi-console-helper" in reply.text
    assert "instance-screenshot" in reply.text
    # Capabilities of what is not built are not advertised.
    assert "network-delete-async" not in reply.text
    assert "provide-dns" not in reply.text
    assert reply.headers["x-request-id"]


def test_create_list_get_delete(mesh: Mesh, rest: httpx.Client) -> None:
    created = rest.post("/instances", json=CREATE)
    assert created.status_code == 200, created.text
    view = created.json()
    assert set(view) == INSTANCE_KEYS
    assert view["state"] == "initial"
    assert view["power_state"] == "initial"
    assert view["disk_spec"] == [{"size": 8, "base": "debian:11", "bus": None, "type": None}]
    assert view["video"] == {"model": "cirrus", "memory": 16384, "vdi": "spice"}
    assert view["side_channels"] == ["sf-agent"]
    assert view["node"] == mesh.node_name  # placed before it was written
    assert (view["console_port"], view["vdi_port"], view["vdi_tls_port"]) == (None, None, None)
    uuid = view["uuid"]

    listed = rest.get("/instances")
    assert listed.status_code == 200
    assert uuid in [entry["uuid"] for entry in listed.json()]

    by_uuid = rest.get(f"/instances/{uuid}").json()
    # The node agent walks the instance on meanwhile (its console port
    # comes with `creating`, its agent monitor writes `agent_state`), and
    # reads say its node's state (a create's answer does not); the rest is
    # as created.
    walked = {"state", "power_state", "disks", "node_state", "vdi_port", "agent_state"}
    assert {k: v for k, v in by_uuid.items() if k not in walked} == {
        k: v for k, v in view.items() if k not in walked
    }

    deleted = rest.delete(f"/instances/{uuid}")
    assert deleted.status_code == 200
    assert deleted.json()["state"] in ("initial", "preflight", "creating", "created")
    # Placed: delete-wait until its node agent has torn it down.
    assert rest.get(f"/instances/{uuid}").json()["state"] in ("delete-wait", "deleted")
    wait_for(lambda: rest.get(f"/instances/{uuid}").json()["state"] == "deleted")
    assert uuid not in [entry["uuid"] for entry in rest.get("/instances").json()]
    assert uuid in [e["uuid"] for e in rest.get("/instances", params={"all": "true"}).json()]
    assert rest.delete(f"/instances/{uuid}").status_code == 404


def test_refused_create_leaves_nothing(rest: httpx.Client) -> None:
    before = rest.request("GET", "/instances", json={"all": True}).json()
    reply = rest.post("/instances", json={**CREATE, "name": "bad_name"})
    assert reply.status_code == 400
    body = reply.json()
    assert body["status"] == 400
    assert "not useable as a DNS" in body["error"]
    assert rest.request("GET", "/instances", json={"all": True}).json() == before


def test_unknown_body_key_is_400(rest: httpx.Client) -> None:
    reply = rest.post("/instances", json={**CREATE, "sshkey": "x"})
    assert reply.status_code == 400
    assert "sshkey" in reply.json()["error"]


def test_missing_token_is_401(mesh: Mesh) -> None:
    reply = httpx.get(f"{mesh.gateway_url}/instances")
    assert reply.status_code == 401
    assert reply.json()["status"] == 401


def test_unknown_instance_is_404(rest: httpx.Client) -> None:
    reply = rest.get("/instances/00000000-0000-4000-8000-000000000000")
    assert reply.status_code == 404
    assert reply.json()["error"] == "instance not found"


def test_instance_survives_api_restart(mesh: Mesh, rest: httpx.Client) -> None:
    uuid = rest.post("/instances", json={**CREATE, "name": "survivor"}).json()["uuid"]
    mesh.stop_service("api", signal.SIGKILL)
    mesh.start_service("api")
    reply = rest.get(f"/instances/{uuid}")
    assert reply.status_code == 200, reply.text
    assert reply.json()["name"] == "survivor"


def test_a_retried_create_with_an_idempotency_key_answers_the_first_instance(
    rest: httpx.Client,
) -> None:
    headers = {"Idempotency-Key": "create-once-1"}
    first = rest.post("/instances", json={**CREATE, "name": "once"}, headers=headers)
    again = rest.post("/instances", json={**CREATE, "name": "once"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["uuid"] == first.json()["uuid"]
    named = [i for i in rest.get("/instances").json() if i["name"] == "once"]
    assert len(named) == 1

    reused = rest.post("/instances", json={**CREATE, "name": "other"}, headers=headers)
    assert reused.status_code == 409
    assert "Idempotency-Key" in reused.json()["error"]
    fresh = rest.post(
        "/instances", json={**CREATE, "name": "once"}, headers={"Idempotency-Key": "create-once-2"}
    )
    assert fresh.json()["uuid"] != first.json()["uuid"]


def test_concurrent_retries_make_exactly_one_instance(mesh: Mesh, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "race-1"}
    # Each attempt holds a placement until the key's winner is known: small
    # disks, so ten of them fit whatever this machine's free disk.
    raced = {**CREATE, "name": "raced", "disk": [{"size": 1, "base": "debian:11"}]}

    def attempt(_: int) -> str:
        reply = httpx.post(f"{mesh.gateway_url}/instances", json=raced, headers=headers)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["uuid"])

    with ThreadPoolExecutor(10) as pool:
        uuids = set(pool.map(attempt, range(10)))
    assert len(uuids) == 1


@pytest.mark.parametrize(
    "operation", ["rebootsoft", "reboothard", "poweroff", "poweron", "pause", "unpause"]
)
def test_power_operations_need_a_created_instance(
    rest: httpx.Client, image_server: ImageServer, operation: str
) -> None:
    # An image never published: the instance never reaches `created`.
    disk = [{"size": 1, "base": image_server.url("never-published.raw")}]
    spec = {**CREATE, "disk": disk, "name": f"power-{operation}"}
    uuid = rest.post("/instances", json=spec).json()["uuid"]
    reply = rest.post(f"/instances/{uuid}/{operation}")
    assert reply.status_code == 406
    assert reply.json()["error"].startswith(f"instance {uuid} is not ready (")
    rest.delete(f"/instances/{uuid}")
    assert rest.post(f"/instances/{uuid}/{operation}", json={"force": True}).status_code == 400
    assert rest.post("/instances/00000000-0000-4000-8000-000000000000/poweron").status_code == 404
