"""Metadata key counts on every set route (issue 12): an instance, a
namespace, a network or an interface holds at most 64 keys, so no record
grows past etcd's request limit one PUT at a time; replacing a key of a
full object still works, and a refused key writes nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devmesh.mesh import Mesh
from tests.meshes import rest_client

LIMIT = 64
BOOT_DISK = [{"size": 1, "base": "debian:11"}]


@pytest.fixture(scope="module")
def routes(mesh: Mesh, token: str) -> Iterator[dict[str, str]]:
    """The metadata route of one object of each kind; removed afterwards."""
    with rest_client(mesh, token) as rest:
        suffix = uuid.uuid4().hex[:6]
        namespace = f"md-{suffix}"
        made = rest.post("/auth/namespaces", json={"namespace": namespace})
        assert made.status_code == 200, made.text
        network = rest.post("/networks", json={"netblock": "10.249.64.0/29", "name": namespace})
        assert network.status_code == 200, network.text
        net = network.json()["uuid"]
        spec = {"cpus": 1, "memory": 128, "disk": BOOT_DISK, "name": f"md-{suffix}"}
        instance = rest.post("/instances", json={**spec, "network": [{"network_uuid": net}]})
        assert instance.status_code == 200, instance.text
        nic = instance.json()["interfaces"][0]["uuid"]
        yield {
            "instance": f"/instances/{instance.json()['uuid']}/metadata",
            "namespace": f"/auth/namespaces/{namespace}/metadata",
            "network": f"/networks/{net}/metadata",
            "interface": f"/interfaces/{nic}/metadata",
        }
        rest.delete(f"/instances/{instance.json()['uuid']}")
        rest.delete(f"/networks/{net}")
        rest.delete(f"/auth/namespaces/{namespace}")


@pytest.mark.parametrize("kind", ["instance", "namespace", "network", "interface"])
def test_the_65th_key_is_refused_and_a_full_object_still_takes_replacements(
    rest: httpx.Client, routes: dict[str, str], kind: str
) -> None:
    route = routes[kind]
    for index in range(LIMIT):
        reply = rest.put(f"{route}/k{index}", json={"value": index + 1})
        assert reply.status_code == 200, reply.text
    full = rest.get(route).json()
    assert len(full) == LIMIT

    refused = rest.put(f"{route}/k{LIMIT}", json={"value": "x" * 16000})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == f"metadata may have at most {LIMIT} entries, not {LIMIT + 1}"
    assert rest.get(route).json() == full

    replaced = rest.put(f"{route}/k0", json={"value": "again"})
    assert replaced.status_code == 200, replaced.text
    assert rest.get(route).json() == {**full, "k0": "again"}
    assert rest.delete(f"{route}/k1").status_code == 200
    assert rest.put(f"{route}/k{LIMIT}", json={"value": 1}).status_code == 200


def test_an_instance_record_stops_growing_at_its_budget_and_still_deletes(
    rest: httpx.Client, routes: dict[str, str]
) -> None:
    # An instance's metadata and its interfaces' live in one etcd record:
    # each object's 64 keys could still add up past etcd's request limit, and
    # a record at that limit could no longer record its own delete.
    net = routes["network"].split("/")[2]
    spec = {"cpus": 1, "memory": 128, "disk": BOOT_DISK, "name": f"big-{uuid.uuid4().hex[:6]}"}
    made = rest.post("/instances", json={**spec, "network": [{"network_uuid": net}]})
    assert made.status_code == 200, made.text
    instance = f"/instances/{made.json()['uuid']}"
    nic = made.json()["interfaces"][0]["uuid"]
    big = "x" * 16000
    refusal = None
    for route in (f"{instance}/metadata", f"/interfaces/{nic}/metadata"):
        for index in range(LIMIT):
            reply = rest.put(f"{route}/big{index}", json={"value": big})
            if reply.status_code != 200:
                refusal = reply
                break
        if refusal is not None:
            break
    assert refusal is not None, "the record grew past its budget"
    assert refusal.status_code == 400, refusal.text
    assert refusal.json()["error"].startswith("an instance record may be at most 1048576 bytes")
    assert rest.delete(instance).status_code == 200
    deadline = time.monotonic() + 60
    while rest.get(instance).json()["state"] != "deleted":
        assert time.monotonic() < deadline, "the delete did not end"
        time.sleep(0.2)
