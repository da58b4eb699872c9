"""50 concurrent operations on one instance (metadata sets, power operations,
gets, and a delete in the middle) end in one consistent state: the record,
libvirt and the event history agree, and the delete is final."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from devmesh.mesh import Mesh
from tests.e2e.test_concurrency import set_state
from tests.e2e.test_vms import created, view, wait_for
from tests.meshes import rest_client
from tests.reliability.figures import FIGURES
from tests.reliability.invariants import snapshot
from tests.reliability.storm import METADATA_EVENT, POWER

OPERATIONS = 50
DELETE_AT = 25
SPREAD = 0.02
"""Seconds between the starts of successive operations: the 50 overlap, and
the delete lands among them."""


def operation(index: int) -> str:
    """The index-th operation: the delete in the middle, else metadata sets,
    power operations and gets in turn."""
    if index == DELETE_AT:
        return "delete"
    return ["metadata", "metadata", *POWER, "get"][index % 6]


def history(events: list[dict[str, Any]], attribute: str, field: str = "value") -> list[str]:
    """The values the history set `attribute` to, oldest first."""
    ordered = sorted(events, key=lambda event: event["timestamp"])
    return [
        event["extra"][field]
        for event in ordered
        if event["message"] == "set attribute" and event["extra"].get("attribute") == attribute
    ]


def test_50_concurrent_operations_on_one_instance(
    mesh: Mesh, token: str, rest: httpx.Client, network: str
) -> None:
    uuid = created(rest, "contended", network=[{"network_uuid": network}])["uuid"]
    assert view(rest, uuid)["state"] == "created"
    start = threading.Barrier(OPERATIONS)

    def run(index: int) -> tuple[str, int]:
        kind = operation(index)
        url = f"/instances/{uuid}"
        with rest_client(mesh, token) as client:
            start.wait()
            time.sleep(index * SPREAD)
            if kind == "delete":
                reply = client.delete(url)
            elif kind == "metadata":
                reply = client.put(f"{url}/metadata/k{index}", json={"value": f"v{index}"})
            elif kind == "get":
                reply = client.get(url)
            else:
                reply = client.post(f"{url}/{kind}")
        return kind, reply.status_code

    with ThreadPoolExecutor(OPERATIONS) as pool:
        results = list(pool.map(run, range(OPERATIONS)))

    statuses = Counter(f"{kind} {status}" for kind, status in results)
    assert dict(statuses)["delete 200"] == 1, statuses
    assert all(status < 500 for _, status in results), statuses
    final = wait_for(lambda: (v := view(rest, uuid))["state"] == "deleted" and v, timeout=60)
    acknowledged = [
        f"k{index}"
        for index, (kind, status) in enumerate(results)
        if (kind, status) == ("metadata", 200)
    ]
    events: list[dict[str, Any]] = []

    def every_set_recorded() -> bool:
        nonlocal events
        events = rest.get(f"/instances/{uuid}/events", params={"limit": -1}).json()
        keys = Counter(e["extra"]["key"] for e in events if e["message"] == METADATA_EVENT)
        return all(keys[key] >= 1 for key in acknowledged) and bool(set_state(events, "deleted"))

    wait_for(every_set_recorded, timeout=20)
    time.sleep(2)  # the delete is final: nothing brings it back
    state = snapshot(mesh)
    keys = Counter(e["extra"]["key"] for e in events if e["message"] == METADATA_EVENT)
    FIGURES["50 concurrent operations"] = {
        "statuses": dict(sorted(statuses.items())),
        "metadata_acknowledged": len(acknowledged),
        "events_lost": sum(keys[key] == 0 for key in acknowledged),
        "events_duplicated": sum(count > 1 for count in keys.values()),
    }

    assert view(rest, uuid)["state"] == "deleted"
    assert final["power_state"] == "off"
    assert uuid not in state.domains
    assert not state.leaks(), state.leaks()
    assert {key: final["metadata"].get(key) for key in acknowledged} == {
        key: f"v{key[1:]}" for key in acknowledged
    }
    assert all(keys[key] == 1 for key in acknowledged), keys
    assert sum(e["message"] == "delete request from REST API" for e in events) == 1
    for state_set in ("delete-wait", "deleted"):
        assert len(set_state(events, state_set)) == 1, state_set
    assert history(events, "state")[-1] == "deleted", history(events, "state")
    powers = history(events, "power_state", "power_state")
    assert powers[-1] == "off", powers
    assert rest.post(f"/instances/{uuid}/poweron").status_code in (404, 406)
