"""A mesh of the fuzz's own, and the callers it fuzzes as.

The fuzz creates and deletes whatever its generated requests manage to, so it
runs against a mesh no other test shares (about 3 s to start, and a few more
to boot its two instances): its listings change only through the fuzz, and
nothing it leaves behind reaches another test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.mesh import Mesh
from tests import meshes
from tests.fuzz.figures import TALLIES
from tests.node_records import put_node

NODE = f"fuzz-{uuid.uuid4().hex[:6]}"
"""This run's node name: its domains, if any, are `sfmesh-<NODE>-<uuid>`."""
TENANT = "fuzz-tenant"
"""A namespace other than system, whose token is one of the fuzz's callers."""
TARGET = "fuzz-target"
"""The name of a namespace, a network and an instance made for the fuzz to aim
at; the tenant's own network and instance are named `TENANT`."""
NETBLOCK = "10.253.17.0/24"
TENANT_NETBLOCK = "10.253.18.0/24"
FLOATING_POOL = "10.253.19.0/24"
"""The mesh's floating pool, so that floating an interface can succeed."""
BOOT = {"cpus": 1, "memory": 128, "disk": [{"size": 1, "base": "debian:11"}]}
"""An instance of the boot-sector guest (the mesh's `debian:11`)."""
BOOT_TIMEOUT = 60.0
"""Seconds an instance may take to be `created` on a loaded machine."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzz's figures, one line per caller."""
    for name, tally in TALLIES.items():
        fives = sum(n for status, n in tally.statuses.items() if status >= 500)
        terminalreporter.write_line(
            f"fuzz as {name}: {tally.cases} cases, {fives} 5xx, {tally.findings} findings, "
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
def fuzz_mesh(boot_sector_url: str) -> Iterator[Mesh]:
    """etcd and every service, as `make run` starts them, on free ports. Its
    `debian:11` is the boot-sector guest, which boots at once."""
    settings = {
        "SFMESH_IMAGE_SHORTHANDS": f"debian:11={boot_sector_url}",
        "SFMESH_FLOATING_NETBLOCK": FLOATING_POOL,
    }
    with meshes.throwaway_mesh("fuzz", NODE, settings) as running:
        yield running


@pytest.fixture(scope="session")
def system_rest(fuzz_mesh: Mesh) -> Iterator[httpx.Client]:
    """A client carrying the mesh's own system key's token, to set things up."""
    with meshes.rest_client(fuzz_mesh, meshes.system_token(fuzz_mesh)) as client:
        yield client


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    """POST `body` to `path`; the answer, which must be a 200."""
    reply = client.post(path, json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def keyed_login(mesh: Mesh, system: httpx.Client, namespace: str, key_name: str) -> str:
    """A token from a new key `key_name` of `namespace`."""
    secret = uuid.uuid4().hex
    post(system, f"/auth/namespaces/{namespace}/keys", {"key_name": key_name, "key": secret})
    return meshes.login(mesh, namespace, secret)


def booted(client: httpx.Client, name: str, network: str) -> dict[str, Any]:
    """A new instance `name` with one NIC on `network`, once `created`."""
    nics = [{"network_uuid": network}]
    made = post(client, "/instances", {**BOOT, "name": name, "network": nics})
    deadline = time.monotonic() + BOOT_TIMEOUT
    while made["state"] != "created" and "error" not in made["state"]:
        assert time.monotonic() < deadline, made
        time.sleep(0.2)
        reply = client.get(f"/instances/{made['uuid']}")
        assert reply.status_code == 200, reply.text
        made = reply.json()
    assert made["state"] == "created", made
    return dict(made)


@pytest.fixture(scope="session")
def system_token(fuzz_mesh: Mesh, system_rest: httpx.Client) -> str:
    """The system caller's token, from a system key of its own: the fuzz may
    rotate or delete the key named `system`, as the system may."""
    return keyed_login(fuzz_mesh, system_rest, "system", "fuzz-caller")


@pytest.fixture(scope="session")
def observer_token(fuzz_mesh: Mesh, system_rest: httpx.Client) -> str:
    """The observer's system token, from a key the fuzz is never told of."""
    return keyed_login(fuzz_mesh, system_rest, "system", "fuzz-observer")


@pytest.fixture(scope="session")
def tenant_token(fuzz_mesh: Mesh, system_rest: httpx.Client) -> str:
    """A token of `TENANT`, a namespace made through REST."""
    post(system_rest, "/auth/namespaces", {"namespace": TENANT})
    return keyed_login(fuzz_mesh, system_rest, TENANT, "fuzz")


@pytest.fixture(scope="session")
def targets(
    fuzz_mesh: Mesh, system_rest: httpx.Client, tenant_token: str
) -> dict[str, dict[str, list[str]]]:
    """Real path values per caller, so fuzzed requests also reach objects
    that exist: the system namespace and its key, a namespace, a network and
    a running instance (with its interface) made for the fuzz, this node
    (a spare one for the system, which may delete it).
    The tenant names its own namespace, network and instance, and the
    system's instance and interface (not its to see); the system is not told
    of the tenant's objects (it would delete them)."""
    post(system_rest, "/auth/namespaces", {"namespace": TARGET})
    network = post(system_rest, "/networks", {"netblock": NETBLOCK, "name": TARGET})
    ours = booted(system_rest, TARGET, network["uuid"])
    with meshes.rest_client(fuzz_mesh, tenant_token) as tenant:
        own_network = post(tenant, "/networks", {"netblock": TENANT_NETBLOCK, "name": TENANT})
        own = booted(tenant, TENANT, own_network["uuid"])
    common = {"node": [NODE], "key_name": ["system"], "external_namespace": ["system", TARGET]}
    system = {
        **common,
        "node": [put_node(fuzz_mesh, f"{NODE}-spare")],  # this node's delete would end the fuzz
        "namespace": ["system", TARGET],
        "ref": [network["uuid"], ours["uuid"], TARGET],
        "uuid": [ours["interfaces"][0]["uuid"]],
    }
    return {
        "system": system,
        "tenant": {
            **common,
            "namespace": [TENANT, "system", TARGET],
            "ref": [own_network["uuid"], own["uuid"], TENANT, ours["uuid"]],
            "uuid": [own["interfaces"][0]["uuid"], ours["interfaces"][0]["uuid"]],
        },
        "anonymous": system,
    }
