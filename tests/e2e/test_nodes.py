"""GET /nodes: system only, the nodes the scheduler has seen."""

from __future__ import annotations

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
