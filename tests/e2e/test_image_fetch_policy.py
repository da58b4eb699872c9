"""A disk base pointing at the mesh's own etcd (its client port, or its peer
port, which answers the member list), through REST: the node agent refuses
to fetch it (although this mesh allows loopback), the instance ends in
`error` with the reason, and etcd's answer is kept nowhere."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from devmesh.mesh import Mesh
from tests.e2e.test_vms import created

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("port", "path", "why"),
    [
        ("etcd_client", "/version", "the mesh's etcd"),
        ("etcd_peer", "/members", "the mesh's etcd member {member} (peer URL)"),
    ],
    ids=["client", "peer"],
)
def test_a_base_at_the_mesh_etcd_ends_in_error(
    rest: httpx.Client, mesh: Mesh, port: str, path: str, why: str
) -> None:
    etcd = f"127.0.0.1:{getattr(mesh.ports, port)}"
    url = f"http://{etcd}{path}"
    instance = created(rest, f"vm-etcd-{port.replace('_', '-')}", disk=[{"size": 1, "base": url}])
    assert instance["state"] == "error"
    reason = why.format(member=mesh.node_name)  # the launcher names the member after its host
    assert instance["error_message"] == f"image URL {url} refused: {etcd} is {reason}"

    answer = httpx.get(url).content  # what a fetch would have stored
    digest = hashlib.sha512(answer).digest()
    blobs = mesh.state_dir / "blobs"
    stored = [path for path in blobs.rglob("*") if path.is_file()]
    assert not [path for path in stored if path.name.endswith(".partial")]
    assert not [path for path in stored if hashlib.sha512(path.read_bytes()).digest() == digest]
    images = mesh.state_dir / "images"
    indexed = [json.loads(entry.read_text())["url"] for entry in images.glob("urls/*.json")]
    assert url not in indexed
    assert not (mesh.state_dir / "instances" / instance["uuid"]).exists()
    assert rest.delete(f"/instances/{instance['uuid']}").status_code == 200
