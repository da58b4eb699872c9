"""The client's resource routes on the whole mesh (issue 16; reference
guest-access §7 and §8.3): the node agent's `resources` events as
`sf-client node resources` reads them, its process metrics as
`GET /nodes/{n}/processmetrics` answers them and `sf-client node cpuhogs`
judges them, and `GET /admin/resources`; all for the system namespace only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from services.node_agent.process_metrics import MIN_AGE
from tests import meshes
from tests.e2e.conftest import RESOURCES_INTERVAL
from tests.node_records import put_node

SF_CLIENT = str(Path(sys.executable).parent / "sf-client")
SERVICES = ("api", "api_gateway", "scheduler", "eventlog", "node_agent")
"""The mesh's services, each a process of the node's host here."""
NODE_KEYS = {
    "cpu_max_per_instance",
    "cpu_available",
    "cpu_load_1",
    "cpu_load_5",
    "cpu_load_15",
    "ram_max_per_instance",
    "ram_max",
    "ram_available",
    "disk_available",
    "instances_total",
    "instances_active",
}


@pytest.fixture(scope="module")
def cli(mesh: Mesh, isolated_home: Path) -> Iterator[None]:
    """`sf-client` configured by ~/.shakenfist as the system namespace."""
    write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    yield


def sf_client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SF_CLIENT, *args], capture_output=True, text=True, timeout=60, check=False
    )


def eventually(read: Any, timeout: float) -> Any:
    """`read()` once it answers something truthy, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := read()):
        assert time.monotonic() < deadline, "not recorded in time"
        time.sleep(1)
    return found


def test_sf_client_node_resources_reads_the_newest_resources_event(
    mesh: Mesh, rest: httpx.Client, cli: None
) -> None:
    def newest() -> list[Any]:
        reply = rest.get(
            f"/nodes/{mesh.node_name}/events", params={"event_type": "resources", "limit": 1}
        )
        assert reply.status_code == 200, reply.text
        return list(reply.json())

    [event] = eventually(newest, RESOURCES_INTERVAL * 6)
    assert event["type"] == "resources"
    done = sf_client("--json", "node", "resources", mesh.node_name)
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout)
    assert shown["cpu_max"] >= 1 and shown["memory_max"] > shown["memory_available"] > 0
    assert shown["disk_total"] >= shown["disk_free"] > 0
    assert shown["cpu_load_1"] >= 0 and shown["instances_total"] >= shown["instances_active"]
    assert shown["is_hypervisor"] is True


def measured(process: str, metrics: dict[str, Any]) -> bool:
    """Whether `metrics` hold `process`'s age, under its name alone or, when
    the host runs several (other meshes' tests), with a pid."""
    shape = re.compile(rf"process_age_{process}(_[0-9]+)?")
    return any(shape.fullmatch(name) for name in metrics)


def test_process_metrics_name_the_mesh_processes(mesh: Mesh, rest: httpx.Client) -> None:
    services = [f"sfmesh_{name}" for name in SERVICES]

    def all_measured() -> dict[str, Any]:
        """The metrics once every service is old enough to be in them."""
        reply = rest.get(f"/nodes/{mesh.node_name}/processmetrics")
        assert reply.status_code == 200, reply.text
        found = dict(reply.json())
        return found if all(measured(service, found) for service in services) else {}

    found = eventually(all_measured, MIN_AGE + RESOURCES_INTERVAL * 6)
    assert measured("etcd", found), found
    for name, value in found.items():
        assert name.startswith(("process_cpu_time_", "process_age_", "process_cpu_fraction_"))
        assert isinstance(value, int | float) and value >= 0
        if name.startswith("process_age_"):
            assert value >= MIN_AGE


def test_a_node_never_sampled_has_no_process_metrics(mesh: Mesh, rest: httpx.Client) -> None:
    name = put_node(mesh, f"quiet-{uuid.uuid4().hex[:6]}")
    reply = rest.get(f"/nodes/{name}/processmetrics")
    assert (reply.status_code, reply.json()) == (200, {})


def test_sf_client_node_cpuhogs_exits_by_its_threshold(
    mesh: Mesh, rest: httpx.Client, cli: None
) -> None:
    eventually(lambda: rest.get(f"/nodes/{mesh.node_name}/processmetrics").json(), 120)
    calm = sf_client("node", "cpuhogs", "-t", "1000")
    assert (calm.returncode, calm.stdout) == (0, ""), calm.stdout + calm.stderr
    hogs = sf_client("node", "cpuhogs", "-t", "0")
    assert hogs.returncode == 1, hogs.stdout + hogs.stderr
    assert f"on node {mesh.node_name} has consumed" in hogs.stdout


def test_admin_resources_lists_the_created_node(mesh: Mesh, rest: httpx.Client) -> None:
    reply = rest.get("/admin/resources")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"total", "per_node"}
    ours = body["per_node"][mesh.node_name]
    assert set(ours) == NODE_KEYS
    assert ours["cpu_max_per_instance"] >= 1 and ours["ram_max"] >= ours["ram_available"] > 0
    assert isinstance(ours["instances_total"], int)
    totals = body["total"]
    assert totals["cpu_available"] == sum(n["cpu_available"] for n in body["per_node"].values())
    assert totals["ram_available"] == sum(n["ram_available"] for n in body["per_node"].values())


def test_capabilities_are_advertised(mesh: Mesh) -> None:
    page = httpx.get(f"{mesh.gateway_url}/").text
    assert "cluster-resources" in page and "node-process-metrics" in page


def test_tenants_are_refused_and_unknown_nodes_are_not_found(
    mesh: Mesh, rest: httpx.Client, token: str
) -> None:
    with meshes.tenant(mesh, token, f"res-{uuid.uuid4().hex[:6]}") as tenant:
        for path in (f"/nodes/{mesh.node_name}/processmetrics", "/admin/resources"):
            refused = tenant.get(path)
            assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized"), path
    missing = rest.get("/nodes/no-such-node/processmetrics")
    assert (missing.status_code, missing.json()["error"]) == (404, "node not found")
