"""Many writers on one instance end in one consistent state, and its event
history tells that one story."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devmesh.mesh import Mesh

pytestmark = pytest.mark.slow

CREATE = {"name": "contended", "cpus": 1, "memory": 256, "disk": [{"size": 1}]}


def test_50_parallel_deletes_power_and_metadata_operations(
    mesh: Mesh, rest: httpx.Client, token: str
) -> None:
    uuid = rest.post("/instances", json=CREATE).json()["uuid"]
    headers = {"Authorization": f"Bearer {token}"}
    operations = ["delete", "poweron", "metadata"] * 16 + ["delete", "delete"]

    def run(index: int) -> tuple[str, int]:
        operation = operations[index]
        url = f"{mesh.gateway_url}/instances/{uuid}"
        with httpx.Client(headers=headers, timeout=30) as client:
            if operation == "delete":
                reply = client.delete(url)
            elif operation == "poweron":
                reply = client.post(f"{url}/poweron")
            else:
                reply = client.put(f"{url}/metadata/k{index}", json={"value": index})
        return operation, reply.status_code

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(run, range(len(operations))))

    # Accepted until the instance is deleted (again while it waits in
    # delete-wait, reference §1.5), then 404.
    deletes = sorted(status for operation, status in results if operation == "delete")
    accepted = deletes.count(200)
    assert accepted >= 1 and deletes == [200] * accepted + [404] * (len(deletes) - accepted)
    # Refused before the instance is created or once it is deleted, done in between.
    assert {status for operation, status in results if operation == "poweron"} <= {200, 406}
    assert {status for operation, status in results if operation == "metadata"} == {200}

    deadline = time.monotonic() + 30
    while (final := rest.get(f"/instances/{uuid}").json())["state"] != "deleted":
        assert time.monotonic() < deadline, final["state"]
        time.sleep(0.1)
    assert len(final["metadata"]) == 16  # every metadata write landed: no lost update

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = rest.get(f"/instances/{uuid}/events", params={"limit": -1}).json()
        metadata_set = sum(e["message"] == "set metadata key request from REST API" for e in events)
        if metadata_set == 16 and set_state(events, "deleted"):
            break
        time.sleep(0.1)
    messages = [event["message"] for event in events]
    assert messages.count("delete request from REST API") == accepted
    for state in ("delete-wait", "deleted"):  # each recorded once, by the writer that set it
        assert len(set_state(events, state)) == 1, state
    assert messages.count("set metadata key request from REST API") == 16


def set_state(events: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    """The events that set an instance's state to `state`."""
    setting = [e for e in events if e["message"] == "set attribute"]
    return [e for e in setting if e["extra"].get("value") == state]


def test_a_trusted_namespace_may_create_in_the_trusting_one(rest: httpx.Client) -> None:
    for name in ("trusting", "trusted"):
        created = rest.post(
            "/auth/namespaces", json={"namespace": name, "key_name": "k", "key": f"{name}-secret"}
        )
        assert created.status_code in (200, 403), created.text
    assert (
        rest.post(
            "/auth/namespaces/trusting/trust", json={"external_namespace": "trusted"}
        ).status_code
        == 200
    )
    token = rest.post("/auth", json={"namespace": "trusted", "key": "trusted-secret"}).json()[
        "access_token"
    ]
    as_trusted = {"Authorization": f"Bearer {token}"}
    base = str(rest.base_url)
    reply = httpx.post(
        f"{base}/instances", json={**CREATE, "namespace": "trusting"}, headers=as_trusted
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["namespace"] == "trusting"
    refused = httpx.post(
        f"{base}/instances", json={**CREATE, "namespace": "system"}, headers=as_trusted
    )
    assert refused.status_code == 404
    assert refused.json()["error"] == "namespace not found"
