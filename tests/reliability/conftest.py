"""A mesh of the reliability suite's own: it kills and freezes services, so
no other test shares it. Its figures are printed at the end of the run and
written to build/reliability.json."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.mesh import Mesh
from tests import meshes
from tests.e2e.test_vms import created
from tests.meshes import rest_client, throwaway_mesh
from tests.reliability.figures import FIGURES

NODE = f"rel-{uuid.uuid4().hex[:6]}"
"""This run's node name: its domains are `sfmesh-<NODE>-<uuid>`."""
REPORT = Path(__file__).parents[2] / "build" / "reliability.json"
KEEPERS = 2
"""Instances the storm powers on and off, each from a client of its own."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every reliability test starts the whole mesh: mark each one slow."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line of figures per case, also written to build/reliability.json."""
    if not FIGURES:
        return
    for case, figures in FIGURES.items():
        line = ", ".join(f"{name} {value}" for name, value in figures.items())
        terminalreporter.write_line(f"reliability {case}: {line}")
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(FIGURES, indent=2) + "\n")


@pytest.fixture(scope="session")
def mesh(boot_sector_url: str) -> Iterator[Mesh]:
    """etcd and every service on free ports; `debian:11` is the boot-sector
    guest on a loopback HTTP server."""
    with throwaway_mesh(
        "reliability", NODE, {"SFMESH_IMAGE_SHORTHANDS": f"debian:11={boot_sector_url}"}
    ) as running:
        yield running


token = meshes.token
rest = meshes.rest
"""The `token` and `rest` fixtures of this layer's `mesh` (tests/meshes.py)."""


@pytest.fixture(scope="session")
def network(mesh: Mesh, token: str) -> str:
    """A network for the NICs of the suite's instances; its uuid."""
    with rest_client(mesh, token) as client:
        reply = client.post("/networks", json={"netblock": "10.250.40.0/24", "name": "reliability"})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["uuid"])


@pytest.fixture(scope="session")
def keepers(mesh: Mesh, token: str) -> list[str]:
    """The storm's keepers (tests/reliability/storm.py): `created` instances
    made once for the suite, which only the storm's power operations touch;
    their uuids."""
    with rest_client(mesh, token) as client:
        made = [created(client, f"keeper-{index}") for index in range(KEEPERS)]
    assert all(instance["state"] == "created" for instance in made), made
    return [instance["uuid"] for instance in made]
