"""A mesh of the fuzz's own, and the callers it fuzzes as.

The fuzz creates and deletes whatever its generated requests manage to, so it
runs against a mesh no other test shares (about 3 s to start): its listings
change only through the fuzz, and nothing it leaves behind reaches another test.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.mesh import Mesh, Ports, remove_leftovers
from tests.fuzz.figures import TALLIES

NODE = f"fuzz-{uuid.uuid4().hex[:6]}"
"""This run's node name: its domains, if any, are `sfmesh-<NODE>-<uuid>`."""
TENANT = "fuzz-tenant"
"""A namespace other than system, whose token is one of the fuzz's callers."""
TARGET = "fuzz-target"
"""The name of a namespace and of a network made for the fuzz to aim at."""
NETBLOCK = "10.253.17.0/24"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz's figures, one line per caller."""
    for name, tally in TALLIES.items():
        fives = sum(n for status, n in tally.statuses.items() if status >= 500)
        terminalreporter.write_line(
            f"fuzz as {name}: {tally.cases} cases, {fives} 5xx, "
            f"{tally.refusals_checked} refused writes changed nothing, "
            f"{len(tally.succeeded)} routes answered 200; "
            f"statuses {dict(sorted(tally.statuses.items()))}"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fuzz starts a whole mesh: mark it slow, as the end-to-end tests are."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def fuzz_mesh() -> Iterator[Mesh]:
    """etcd and every service, as `make run` starts them, on free ports."""
    state_dir = Path(tempfile.mkdtemp(prefix="sfmesh-fuzz-", dir="/var/tmp"))
    state_dir.chmod(0o755)
    running = Mesh(state_dir=state_dir, ports=Ports.free(), sink=sys.stderr, node_name=NODE)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        remove_leftovers(NODE)
        shutil.rmtree(state_dir, ignore_errors=True)


def login(mesh: Mesh, namespace: str, key: str) -> str:
    """A token of `namespace` from POST /auth."""
    reply = httpx.post(f"{mesh.gateway_url}/auth", json={"namespace": namespace, "key": key})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def system_post(mesh: Mesh, path: str, body: dict[str, Any]) -> Any:
    """POST `body` to `path` with the mesh's own system key; the answer."""
    token = login(mesh, "system", mesh.system_key)
    reply = httpx.post(
        f"{mesh.gateway_url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def keyed_login(mesh: Mesh, namespace: str, key_name: str) -> str:
    """A token from a new key `key_name` of `namespace`."""
    secret = uuid.uuid4().hex
    system_post(mesh, f"/auth/namespaces/{namespace}/keys", {"key_name": key_name, "key": secret})
    return login(mesh, namespace, secret)


@pytest.fixture(scope="session")
def system_token(fuzz_mesh: Mesh) -> str:
    """The system caller's token, from a system key of its own: the fuzz may
    rotate or delete the key named `system`, as the system may."""
    return keyed_login(fuzz_mesh, "system", "fuzz-caller")


@pytest.fixture(scope="session")
def observer_token(fuzz_mesh: Mesh) -> str:
    """The observer's system token, from a key the fuzz is never told of."""
    return keyed_login(fuzz_mesh, "system", "fuzz-observer")


@pytest.fixture(scope="session")
def tenant_token(fuzz_mesh: Mesh) -> str:
    """A token of `TENANT`, a namespace made through REST."""
    system_post(fuzz_mesh, "/auth/namespaces", {"namespace": TENANT})
    return keyed_login(fuzz_mesh, TENANT, "fuzz")


@pytest.fixture(scope="session")
def targets(fuzz_mesh: Mesh, tenant_token: str) -> dict[str, dict[str, list[str]]]:
    """Real path values per caller, so fuzzed requests also reach objects
    that exist: the system namespace and its key, a namespace and a network
    made for the fuzz, this node. The tenant also names its own namespace;
    the system is not told of it (it would delete it)."""
    system_post(fuzz_mesh, "/auth/namespaces", {"namespace": TARGET})
    network = system_post(fuzz_mesh, "/networks", {"netblock": NETBLOCK, "name": TARGET})
    common = {
        "ref": [network["uuid"], TARGET],
        "node": [NODE],
        "key_name": ["system"],
        "external_namespace": ["system", TARGET],
    }
    return {
        "system": {**common, "namespace": ["system", TARGET]},
        "tenant": {**common, "namespace": [TENANT, "system", TARGET]},
        "anonymous": {**common, "namespace": ["system", TARGET]},
    }
