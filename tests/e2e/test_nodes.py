"""GET /nodes: system only, the nodes the scheduler has seen."""

from __future__ import annotations

import time

import httpx
import pytest

from devmesh.mesh import Mesh

pytestmark = pytest.mark.slow


def test_nodes_are_for_the_system_namespace_only(mesh: Mesh, rest: httpx.Client) -> None:
    listed = rest.get("/nodes")
    assert listed.status_code == 200
    assert isinstance(listed.json(), list)
    assert rest.get("/nodes/no-such-node").status_code == 404
    assert httpx.get(f"{mesh.gateway_url}/nodes").status_code == 401


def test_the_mesh_node_agent_registers_with_the_scheduler(mesh: Mesh, rest: httpx.Client) -> None:
    # Other tests add node agents of their own: look for this mesh's by name.
    deadline = time.monotonic() + 20
    named: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        named = [node for node in rest.get("/nodes").json() if node["name"] == mesh.node_name]
        if named:
            break
        time.sleep(0.2)
    assert len(named) == 1
    node = named[0]
    assert node["state"] == "created"
    assert node["ip"] == "127.0.0.1"
    assert node["version"] == 7
    assert rest.get(f"/nodes/{node['name']}").json()["name"] == node["name"]
