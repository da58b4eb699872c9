"""etcd frozen for 10 s: every request meanwhile is a 503 with Retry-After
within the gateway's deadline (but a GET by UUID in the first half second,
which the api's live copy of instance records may answer with the record as
it was: services/api/instances/cache.py), none of the refused writes left anything (no
instance, no metadata key, no delete asked, no address or MAC key without
its instance nor an instance without its keys), and a create succeeds
within 5 s of etcd's return."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from devmesh.mesh import Mesh
from services.api.instances.cache import MAX_AGE
from tests.meshes import rest_client
from tests.reliability.figures import FIGURES
from tests.reliability.invariants import settled, state_name
from tests.reliability.storm import SPEC

OUTAGE = 10.0
BACK_WITHIN = 5.0
"""Seconds after etcd's return by which a create must succeed."""
GATEWAY_DEADLINE = 30.0
"""The gateway's deadline on a call (services/api_gateway/config.py)."""
CONVERGENCE = 60.0
COPY_SLACK = 0.3
"""Seconds beyond MAX_AGE the api's copy may still take to stop answering
(its last progress request was asked before the freeze)."""


@contextmanager
def frozen(mesh: Mesh) -> Iterator[None]:
    """etcd stopped (SIGSTOP) for the block, then continued."""
    process = mesh.children["etcd"].process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def test_etcd_away_for_10_s(mesh: Mesh, token: str, network: str, rest: httpx.Client) -> None:
    before = rest.post("/instances", json={**SPEC, "name": "before-outage"})
    assert before.status_code == 200, before.text
    known = before.json()["uuid"]
    requests = [
        ("POST", "/instances", {**SPEC, "name": "during", "network": [{"network_uuid": network}]}),
        ("GET", f"/instances/{known}", None),
        ("PUT", f"/instances/{known}/metadata/during", {"value": "outage"}),
        ("GET", "/instances", None),
        ("DELETE", f"/instances/{known}", None),
    ]
    answers: list[tuple[str, int, str | None, float]] = []
    copied: list[tuple[float, str]] = []
    """When each GET answered from the api's copy was sent (after the
    freeze), and the uuid it answered."""
    lock = threading.Lock()

    def client(method: str, path: str, body: object, until: float) -> None:
        with rest_client(mesh, token, timeout=GATEWAY_DEADLINE + 10) as http:
            while time.monotonic() < until:
                sent = time.monotonic()
                reply = http.request(method, path, json=body)
                took = time.monotonic() - sent
                with lock:
                    if path == f"/instances/{known}" and method == "GET" and reply.is_success:
                        copied.append((sent - frozen_at, reply.json()["uuid"]))
                        continue
                    answers.append(
                        (
                            f"{method} {path}",
                            reply.status_code,
                            reply.headers.get("retry-after"),
                            took,
                        )
                    )

    with frozen(mesh):
        frozen_at = time.monotonic()
        until = time.monotonic() + OUTAGE - 1  # the last request starts before etcd returns
        threads = [threading.Thread(target=client, args=(*r, until)) for r in requests]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    back = time.monotonic()
    while True:
        reply = rest.post("/instances", json={**SPEC, "name": "after-outage"})
        if reply.status_code == 200 or time.monotonic() - back > BACK_WITHIN:
            break
        time.sleep(0.1)
    recovered = round(time.monotonic() - back, 1)
    state, converge_seconds = settled(mesh, timeout=CONVERGENCE)
    FIGURES["etcd frozen 10 s"] = {
        "requests_during": len(answers),
        "statuses": sorted({str(status) for _, status, _, _ in answers}),
        "slowest_answer_s": round(max(took for *_, took in answers), 1),
        "gets_from_the_copy": len(copied),
        "create_ok_after_s": recovered,
        "converged_in_s": converge_seconds,
        "leaked_keys": len(state.leaks()),
        "missing_keys": len(state.missing_keys()),
    }

    refused = [a for a in answers if a[1] != 503 or a[2] is None or int(a[2]) < 1]
    assert not refused, refused
    assert all(sent < MAX_AGE + COPY_SLACK and uuid == known for sent, uuid in copied), copied
    assert all(took < GATEWAY_DEADLINE for *_, took in answers), answers
    assert reply.status_code == 200, reply.text
    assert not state.unconverged(), state.unconverged()
    assert not state.leaks(), state.leaks()
    assert not state.missing_keys(), state.missing_keys()
    assert "during" not in [record.instance.name for record in state.instances.values()]
    survivor = state.instances[known].instance
    assert "during" not in survivor.metadata.fields, survivor.metadata
    assert state_name(state.instances[known]) not in ("delete-wait", "deleted"), survivor
