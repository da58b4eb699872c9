"""The whole mesh, started once for the end-to-end tests on free ports."""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devmesh.mesh import Mesh, Ports, remove_leftovers

NODE = f"e2e-{uuid.uuid4().hex[:6]}"
"""This run's node name: its domains are `sfmesh-<NODE>-<uuid>`."""


@pytest.fixture(scope="session")
def mesh(boot_sector_url: str) -> Iterator[Mesh]:
    """etcd and every service, as `make run` starts them. Its `debian:11`
    is the boot-sector guest on a loopback HTTP server, and its state folder
    one that qemu (another user) can traverse."""
    state_dir = Path(tempfile.mkdtemp(prefix="sfmesh-e2e-", dir="/var/tmp"))
    state_dir.chmod(0o755)
    running = Mesh(
        state_dir=state_dir,
        ports=Ports.free(),
        sink=sys.stderr,
        node_name=NODE,
        settings={"SFMESH_IMAGE_SHORTHANDS": f"debian:11={boot_sector_url}"},
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        remove_leftovers(NODE)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def token(mesh: Mesh) -> str:
    """A system token from POST /auth."""
    reply = httpx.post(
        f"{mesh.gateway_url}/auth", json={"namespace": "system", "key": mesh.system_key}
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


@pytest.fixture
def rest(mesh: Mesh, token: str) -> Iterator[httpx.Client]:
    """An HTTP client for the gateway carrying the system token."""
    with httpx.Client(
        base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client
