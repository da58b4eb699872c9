"""Restarts read as outages, and the mesh serves again soon after them: a
create while the scheduler or a node agent is away is a 503 with
Retry-After that writes nothing, and the gateway reaches a restarted api
quickly. Each test leaves every service of the shared mesh serving."""

from __future__ import annotations

import os
import signal
import socket
import threading
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
GATEWAY_CATCH_UP = 0.5
"""Seconds the gateway may take to serve again once the api serves."""


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


class Listener:
    """A bare TCP listener on a port, counting the connections it accepts
    (and drops): each is one reconnect attempt of a gRPC channel."""

    def __init__(self, port: int) -> None:
        self._socket = socket.create_server(("127.0.0.1", port))
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            conn.close()
            self.accepted += 1

    def close(self) -> None:
        self._socket.close()


def test_the_gateway_serves_soon_after_a_restarted_api(
    mesh: Mesh, rest: httpx.Client, token: str
) -> None:
    with restored(mesh, "api"):
        mesh.stop_service("api", signal.SIGKILL)
        # Clients keep calling while the api is away, so the gateway's channel
        # fails attempt after attempt and backs off; the api comes back right
        # after its third failed attempt, when gRPC's default backoff would
        # wait at least 2 s more.
        stop = threading.Event()
        answered: list[float] = []

        def poll() -> None:
            with httpx.Client(
                base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                while not stop.is_set():
                    if client.get("/instances").status_code == 200:
                        answered.append(time.monotonic())
                    time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        listener = Listener(mesh.ports.api)
        poller.start()
        try:
            deadline = time.monotonic() + 10
            while listener.accepted < 3 and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            listener.close()
        assert listener.accepted >= 3
        child = mesh.launch_service("api")
        serving = mesh.serving("api")
        while not serving():
            assert child.alive()
        serving_at = time.monotonic()
        deadline = serving_at + 10
        while not any(when >= serving_at for when in answered) and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        poller.join()
        caught_up = min((when for when in answered if when >= serving_at), default=deadline)
        assert caught_up - serving_at <= GATEWAY_CATCH_UP
