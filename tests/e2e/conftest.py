"""The whole mesh, started once for the end-to-end tests on free ports."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.mesh import Mesh, Ports, remove_leftovers, write_config
from launcher.config import load_config
from launcher.host import Host
from tests import meshes
from tests.meshes import throwaway_mesh

NODE = f"e2e-{uuid.uuid4().hex[:6]}"
"""This run's node name: its domains are `sfmesh-<NODE>-<uuid>`."""
FLOATING_POOL = "10.254.9.0/24"
"""The mesh's floating pool; its first host is the outside's router."""
USAGE_INTERVAL = 3
"""Seconds between the node agent's usage samples (60 by default): one bulk
libvirt call and an event per running instance, cheap enough for the suite."""
RESOURCES_INTERVAL = 5
"""Seconds between a node's resources samples (300 outside tests)."""


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
    is the boot-sector guest on a loopback HTTP server."""
    settings = {
        "SFMESH_IMAGE_SHORTHANDS": f"debian:11={boot_sector_url}",
        "SFMESH_FLOATING_NETBLOCK": FLOATING_POOL,
        "SFMESH_USAGE_INTERVAL": str(USAGE_INTERVAL),
        "SFMESH_RESOURCES_INTERVAL": str(RESOURCES_INTERVAL),
    }
    with throwaway_mesh("e2e", NODE, settings) as running:
        yield running


token = meshes.token
rest = meshes.rest
"""The `token` and `rest` fixtures of this layer's `mesh` (tests/meshes.py)."""


@contextlib.contextmanager
def extra_node_host(
    mesh: Mesh, name: str, settings: dict[str, str] | None = None
) -> Iterator[Host]:
    """Another node agent of `mesh` on this machine, named `name`, as a
    hypervisor host of the mesh runs one: the launcher, from a host config
    of its own (only the node agent, its own port and state folder holding
    the mesh's service key, as every host of a mesh has) with `settings`
    (SFMESH_* variables) over the mesh's. Yields its host once it serves
    (to stop or restart its `node_agent`); what it leaves behind is removed
    after it stops."""
    state = Path(tempfile.mkdtemp(prefix=f"sfmesh-e2e-{name}-", dir="/var/tmp"))
    state.chmod(0o755)
    shutil.copy(mesh.state_dir / "service.key", state / "service.key")
    listen = f"127.0.0.1:{Ports.free().node_agent}"
    write_config(state / "host.toml", mesh.node_agent_document(name, state, listen, settings or {}))
    host = Host(load_config(state / "host.toml", hostname=name), sink=sys.stderr)
    try:
        host.start()
        yield host
    finally:
        host.stop()
        remove_leftovers(name)
        shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def extra_node_agent(
    mesh: Mesh, name: str, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """`extra_node_host`, yielding the node's name."""
    with extra_node_host(mesh, name, settings):
        yield name
