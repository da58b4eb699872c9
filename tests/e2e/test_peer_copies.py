"""Blobs across nodes: a second node agent, placed an instance of a blob it
lacks, copies it from the first over ReadBlob, lists itself and boots; the
image URL is fetched once per mesh.

The second agent's node record stays `created` for the scheduler's grace
after it stops, and the scheduler waits for its reports meanwhile, so this
module runs late (after test_create_rules, whose refusals expect 507)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from devmesh.mesh import Mesh
from guests.bootsector import MARKER, boot_sector
from tests.e2e.conftest import extra_node_agent
from tests.e2e.test_artifact_flow import RUN, gone, ok, settled
from tests.e2e.test_node_loss import node_state
from tests.e2e.test_vms import wait_for

if TYPE_CHECKING:
    from tests.conftest import ImageServer

pytestmark = pytest.mark.slow


def test_a_node_without_the_blob_copies_it_from_a_peer_and_boots(
    rest: httpx.Client, mesh: Mesh, image_server: ImageServer
) -> None:
    """Fetched once per mesh: a second node copies the blob from the first
    over ReadBlob, checks it, lists itself, and boots from it."""
    name = f"peer-{RUN}.raw"
    url = image_server.publish(name, boot_sector())
    cached = ok(rest.post("/artifacts", json={"url": url}))
    blob_uuid = settled(rest, f"/artifacts/{cached['uuid']}")["blob_uuid"]
    with extra_node_agent(mesh, f"{mesh.node_name}-peer") as other:
        wait_for(lambda: node_state(rest, other) == "created")
        spec = {
            "name": f"on-peer-{RUN}",
            "cpus": 1,
            "memory": 128,
            "disk": [{"size": 1, "base": f"sf://blob/{blob_uuid}"}],
            "placed_on": other,
        }
        made = ok(rest.post("/instances", json=spec))
        instance = settled(rest, f"/instances/{made['uuid']}")
        assert instance["state"] == "created", instance.get("error_message")
        assert instance["node"] == other
        uuid_ = made["uuid"]
        wait_for(lambda: MARKER in rest.get(f"/instances/{uuid_}/consoledata").content, timeout=10)
        blob = ok(rest.get(f"/blobs/{blob_uuid}"))
        assert sorted(blob["locations"]) == sorted([mesh.node_name, other])
        assert image_server.hits(name) == 1  # copied from the peer, not fetched again
        ok(rest.delete(f"/instances/{uuid_}"))
        gone(rest, uuid_)
    ok(rest.delete(f"/artifacts/{cached['uuid']}"))
