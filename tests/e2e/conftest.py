"""The whole mesh, started once for the end-to-end tests on free ports."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devmesh.mesh import Mesh, Ports, remove_leftovers
from devmesh.processes import Child, grpc_serving, python_module, wait_until

NODE = f"e2e-{uuid.uuid4().hex[:6]}"
"""This run's node name: its domains are `sfmesh-<NODE>-<uuid>`."""
FLOATING_POOL = "10.254.9.0/24"
"""The mesh's floating pool; its first host is the outside's router."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every end-to-end test starts the whole mesh: mark each one slow, so a
    new file cannot forget to."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.slow)


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
        settings={
            "SFMESH_IMAGE_SHORTHANDS": f"debian:11={boot_sector_url}",
            "SFMESH_FLOATING_NETBLOCK": FLOATING_POOL,
        },
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


@contextlib.contextmanager
def extra_node_agent(
    mesh: Mesh, name: str, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """Another node agent of `mesh` on this machine, named `name`: its own
    port and state folder (with the mesh's service key, as every node of a
    mesh has) and `settings` over the mesh's. Yields its name once it serves;
    what it leaves behind is removed after it stops."""
    state = Path(tempfile.mkdtemp(prefix=f"sfmesh-e2e-{name}-", dir="/var/tmp"))
    state.chmod(0o755)
    shutil.copy(mesh.state_dir / "service.key", state / "service.key")
    listen = f"127.0.0.1:{Ports.free().node_agent}"
    env = {
        **mesh.environment(),
        "SFMESH_NODE_NAME": name,
        "SFMESH_STATE_DIR": str(state),
        "SFMESH_NODE_AGENT_LISTEN": listen,
        **(settings or {}),
    }
    child = Child(name, python_module("services.node_agent"), env=env, sink=sys.stderr)
    try:
        wait_until(grpc_serving(listen), child=child, timeout=60)
        yield name
    finally:
        child.stop()
        remove_leftovers(name)
        shutil.rmtree(state, ignore_errors=True)
