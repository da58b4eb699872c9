"""The official shakenfist-client, unchanged, against the mesh."""

from __future__ import annotations

from pathlib import Path

import pytest
from shakenfist_client import apiclient

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh

pytestmark = pytest.mark.slow


def test_client_with_no_arguments_lists_instances(mesh: Mesh, isolated_home: Path) -> None:
    written = write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    assert written
    assert apiclient.Client().get_instances() is not None

    # Nothing moves an instance out of `initial` until node agents land, so
    # the create does not wait for it.
    client = apiclient.Client(async_strategy=apiclient.ASYNC_CONTINUE)
    disk = {"size": 8, "base": "debian:11", "bus": None, "type": "disk"}
    created = client.create_instance("from-client", 1, 256, [], [disk], None, None)
    instances = client.get_instances()
    assert created["uuid"] in [instance["uuid"] for instance in instances]
    assert client.get_instance(created["uuid"])["name"] == "from-client"
