"""Restarts read as outages: a create while the scheduler or a node agent is
away is a 503 with Retry-After that writes nothing. Each test leaves every
service of the shared mesh serving."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from devmesh.mesh import Mesh

pytestmark = pytest.mark.slow

SPEC: dict[str, Any] = {"cpus": 1, "memory": 128, "disk": [{"size": 1, "base": "debian:11"}]}


@contextmanager
def restored(mesh: Mesh, *services: str) -> Iterator[None]:
    """Start whichever of `services` is not running when the block ends."""
    try:
        yield
    finally:
        for service in services:
            if service not in mesh.children:
                mesh.start_service(service)


def refused_create(rest: httpx.Client, reason: str, within: float = 2.0) -> httpx.Response:
    """Post creates until one is refused for `reason`; each must be a 503
    with Retry-After that wrote nothing (the api may still be reconnecting
    to a scheduler that just came back: SCHEDULER_UNAVAILABLE meanwhile)."""
    deadline = time.monotonic() + within
    while True:
        name = f"outage-{uuid.uuid4().hex[:8]}"
        reply = rest.post("/instances", json={"name": name, **SPEC})
        assert reply.status_code == 503, reply.text
        assert int(reply.headers["Retry-After"]) >= 1
        everything = rest.request("GET", "/instances", json={"all": True}).json()
        assert name not in [instance["name"] for instance in everything]
        if reply.json()["details"][0]["reason"] == reason:
            return reply
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.05)


def created_within(rest: httpx.Client, seconds: float) -> str:
    """Post creates until one is answered 200 (deleted at once); its uuid."""
    deadline = time.monotonic() + seconds
    while True:
        reply = rest.post("/instances", json={"name": "recovered", **SPEC})
        if reply.status_code == 200:
            rest.delete(f"/instances/{reply.json()['uuid']}")
            return str(reply.json()["uuid"])
        assert reply.status_code == 503, reply.text
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.1)


def test_a_create_while_the_scheduler_restarts_is_503_and_writes_nothing(
    mesh: Mesh, rest: httpx.Client
) -> None:
    agent = mesh.children["node_agent"].process
    assert agent is not None
    with restored(mesh, "scheduler"):
        mesh.stop_service("scheduler", signal.SIGKILL)
        refused_create(rest, "SCHEDULER_UNAVAILABLE", within=0)
        # Back, but its node agent (frozen) has not reported to it yet.
        os.kill(agent.pid, signal.SIGSTOP)
        try:
            mesh.start_service("scheduler")
            waiting = refused_create(rest, "NODES_NOT_REPORTED")
        finally:
            os.kill(agent.pid, signal.SIGCONT)
        assert mesh.node_name in waiting.json()["error"]
        created_within(rest, 10)


def test_a_create_while_the_node_agent_restarts_is_503(mesh: Mesh, rest: httpx.Client) -> None:
    with restored(mesh, "node_agent"):
        mesh.stop_service("node_agent", signal.SIGKILL)
        refused_create(rest, "NODES_NOT_REPORTED", within=0)
        mesh.start_service("node_agent")
        created_within(rest, 10)
