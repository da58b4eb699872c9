"""The artifacts' sweep through a whole mesh of its own, whose settings
(`SFMESH_HARD_DELETE_DELAY`, `SFMESH_BLOB_DELETE_GRACE`, which every service
reads) let records go at once: a deleted label and the blob it alone held
are forgotten, and 404 from then on. The rules themselves are tested on a
real etcd in tests/integration/api/test_artifact_sweeper.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devmesh.mesh import Mesh
from tests.e2e.blobs import put_blob, read_record
from tests.e2e.test_vms import wait_for
from tests.meshes import rest_client, system_token, throwaway_mesh

RUN = uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def forgetful() -> Iterator[Mesh]:
    """A mesh of this module's own that forgets deleted records at once."""
    settings = {
        "SFMESH_HARD_DELETE_DELAY": "0",
        "SFMESH_BLOB_DELETE_GRACE": "0",
        "SFMESH_ARTIFACT_SWEEP_INTERVAL": "0.5",
    }
    with throwaway_mesh("sweeps", f"sweep-{RUN}", settings) as running:
        yield running


def test_a_deleted_label_and_its_blob_are_forgotten(forgetful: Mesh) -> None:
    blob = put_blob(forgetful, f"forgotten {RUN}".encode())
    kept = put_blob(forgetful, f"kept {RUN}".encode())
    with rest_client(forgetful, system_token(forgetful)) as rest:
        made = rest.post(f"/label/gone-{RUN}", json={"blob_uuid": blob["uuid"]})
        assert made.status_code == 200, made.text
        label = made.json()["uuid"]
        assert rest.post(f"/label/kept-{RUN}", json={"blob_uuid": kept["uuid"]}).status_code == 200
        assert rest.delete(f"/label/gone-{RUN}").status_code == 200

        wait_for(lambda: rest.get(f"/blobs/{blob['uuid']}").status_code == 404)
        assert read_record(forgetful, "blob", blob["uuid"]) is None
        assert read_record(forgetful, "artifact", label) is None
        reply = rest.get(f"/artifacts/{label}")
        assert (reply.status_code, reply.json()["error"]) == (404, "artifact not found")
        assert rest.get(f"/blobs/{blob['uuid']}/events").status_code == 404
        # what is still held stays
        assert rest.get(f"/blobs/{kept['uuid']}").json()["state"] == "created"
        assert rest.get(f"/label/kept-{RUN}").status_code == 200
