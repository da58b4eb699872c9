"""An answered write's events survive a kill -9 of the api right after the
answer: the api made them durable in its spool before answering."""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

import httpx
import pytest

from devmesh.mesh import Mesh

pytestmark = pytest.mark.slow

CREATE = {"name": "durable", "cpus": 1, "memory": 128, "disk": [{"size": 1}]}
AUDIT = "set metadata key request from REST API"


def extra(event: dict[str, Any]) -> dict[str, Any]:
    return event.get("extra") or {}


def test_a_set_metadata_keeps_its_events_across_a_kill_minus_9_of_the_api(
    mesh: Mesh, rest: httpx.Client
) -> None:
    instance = rest.post("/instances", json=CREATE).json()["uuid"]
    key = f"k{uuid.uuid4().hex[:8]}"
    # With the eventlog gone nothing is acknowledged: the events of the write
    # can only survive in the api's spool.
    mesh.stop_service("eventlog", signal.SIGKILL)
    try:
        reply = rest.put(f"/instances/{instance}/metadata/{key}", json={"value": "kept"})
        mesh.stop_service("api", signal.SIGKILL)
        assert reply.status_code == 200, reply.text
    finally:
        for service in ("eventlog", "api"):
            if service not in mesh.children:
                mesh.start_service(service)

    deadline = time.monotonic() + 20
    audits: list[dict[str, Any]] = []
    mutations: list[dict[str, Any]] = []
    while not (audits and mutations) and time.monotonic() < deadline:
        time.sleep(0.2)
        listed = rest.get(f"/instances/{instance}/events", params={"limit": -1})
        if listed.status_code != 200:
            continue  # the api is still coming back
        events = listed.json()
        audits = [e for e in events if e["message"] == AUDIT and extra(e).get("key") == key]
        mutations = [
            e
            for e in events
            if e["message"] == "set attribute"
            and extra(e).get("attribute") == "metadata"
            and extra(e).get(key) == "kept"
        ]
    assert len(audits) == 1, audits
    assert len(mutations) == 1, mutations
    rest.delete(f"/instances/{instance}")
