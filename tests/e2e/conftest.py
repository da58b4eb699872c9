"""The whole mesh, started once for the end-to-end tests on free ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from devmesh.mesh import Mesh, Ports


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """etcd and every service, as `make run` starts them."""
    running = Mesh(state_dir=tmp_path_factory.mktemp("state"), ports=Ports.free(), sink=sys.stderr)
    try:
        running.start()
        yield running
    finally:
        running.stop()


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
