"""An answered write's events survive a kill -9 of the api right after the
answer: the api made them durable in its spool before answering. A
create's survive even the loss of the api's host with its spool: they wait
in etcd, in the api's outbox, until the eventlog has them."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
import uuid
from typing import Any

import httpx
import pytest
from sfmesh.v1 import eventlog_service_pb2

from devmesh.mesh import Mesh
from services.api.clients.outbox import GRACE, KIND, SWEEP_INTERVAL
from services.common.store import Store, kind_prefix

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


def held_in_outbox(mesh: Mesh, object_uuid: str) -> list[str]:
    """The messages of an object's events waiting in the api's outbox."""

    async def read() -> list[str]:
        store = Store(f"127.0.0.1:{mesh.ports.etcd_client}")
        try:
            return [
                event.message
                async for item in store.list_prefix(kind_prefix(KIND))
                for event in eventlog_service_pb2.RecordRequest.FromString(item.value).events
                if event.object_uuid == object_uuid
            ]
        finally:
            await store.close()

    return asyncio.run(read())


def test_a_create_keeps_its_events_when_the_api_host_is_lost_with_its_spool(
    mesh: Mesh, rest: httpx.Client
) -> None:
    # With the eventlog gone nothing is acknowledged; the api then dies with
    # its spool, as a lost host would: only the outbox holds the events.
    mesh.stop_service("eventlog", signal.SIGKILL)
    try:
        reply = rest.post("/instances", json=CREATE)
        mesh.stop_service("api", signal.SIGKILL)
        for spool in (mesh.state_dir / "spool").glob("api@*"):
            shutil.rmtree(spool)
    finally:
        for service in ("eventlog", "api"):
            if service not in mesh.children:
                mesh.start_service(service)
    assert reply.status_code == 200, reply.text
    instance = reply.json()["uuid"]
    assert "create request from REST API" in held_in_outbox(mesh, instance)

    deadline = time.monotonic() + GRACE + SWEEP_INTERVAL + 20
    messages: list[str] = []
    while "create request from REST API" not in messages and time.monotonic() < deadline:
        time.sleep(0.5)
        listed = rest.get(f"/instances/{instance}/events", params={"limit": -1})
        if listed.status_code == 200:
            messages = [event["message"] for event in listed.json()]
    assert messages.count("db record created") == 1, messages
    assert messages.count("create request from REST API") == 1, messages
    while held_in_outbox(mesh, instance) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert held_in_outbox(mesh, instance) == []
    rest.delete(f"/instances/{instance}")
