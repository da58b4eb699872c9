"""kill -9 of each service in turn during a storm of REST requests: every
acknowledged request keeps its effect and its audit event exactly once (found
by its request id; an unacknowledged one has it at most once), every
instance converges, and no domain, address or MAC key is left behind."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from devmesh.mesh import Mesh
from tests.reliability.figures import FIGURES
from tests.reliability.invariants import POWER_ON, settled, snapshot, state_name
from tests.reliability.storm import Storm, audit_counts

SERVICES = ["api", "scheduler", "node_agent", "eventlog", "gateway", "etcd"]
BEFORE_KILL = 2.0
"""Seconds of storm before the kill."""
AFTER_RESTART = 2.0
"""Seconds of storm once the service serves again."""
CONVERGENCE = 120.0
"""Seconds every instance has to converge after the storm (TCG on a loaded
2-core machine boots a boot sector in a few seconds)."""
EVENTS_CATCH_UP = 20.0
"""Seconds the audit events of acknowledged requests have to show."""


def crash_and_restart(mesh: Mesh, service: str) -> None:
    """kill -9 `service`, then start it again and wait until it serves. etcd
    restarts on its ports and data folder, as the mesh first started it."""
    mesh.stop_service(service, signal.SIGKILL)
    time.sleep(0.5)
    mesh.start_service(service)


@pytest.fixture
def emptied(mesh: Mesh, rest: httpx.Client, keepers: list[str]) -> Iterator[None]:
    """Delete what a case leaves, so the next one starts with its keepers only."""
    yield
    for instance, record in snapshot(mesh).instances.items():
        if state_name(record) != "deleted" and instance not in keepers:
            rest.delete(f"/instances/{instance}")
    settled(mesh, timeout=CONVERGENCE)


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.usefixtures("emptied")
def test_kill_9_during_a_storm(
    service: str, mesh: Mesh, token: str, network: str, keepers: list[str], rest: httpx.Client
) -> None:
    started, wall_start = time.monotonic(), time.time()
    with Storm(mesh, token, network, keepers) as storm:
        time.sleep(BEFORE_KILL)
        crash_and_restart(mesh, service)
        time.sleep(AFTER_RESTART)
    storm_seconds = round(time.monotonic() - started, 1)
    ledger = storm.ledger
    state, converge_seconds = settled(mesh, timeout=CONVERGENCE)

    deadline = time.monotonic() + EVENTS_CATCH_UP
    while True:
        counts = audit_counts(rest, ledger)
        lost = [a for a in ledger.audited if a.acknowledged and counts[a] == 0]
        if not lost or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    duplicated = [a for a, count in counts.items() if count > 1]
    audited = Counter(
        a.event.removesuffix(" request from REST API") for a in ledger.audited if a.acknowledged
    )
    views = {instance: rest.get(f"/instances/{instance}").json() for instance in ledger.created}
    missing_metadata = [
        (instance, key, value)
        for instance, key, value in ledger.metadata
        if views[instance].get("metadata", {}).get(key) != value
    ]
    not_deleted = sorted(u for u in ledger.deleted if state_name(state.instances[u]) != "deleted")
    not_created = sorted(u for u in ledger.created if u not in state.instances)
    wrong_power = sorted(
        u
        for u, power in ledger.power.items()
        if power is not None
        and state_name(state.instances[u]) == "created"
        and (state.instances[u].instance.power_state == POWER_ON) != (power == "on")
    )
    unconverged = state.unconverged()
    made = [u for u, record in state.instances.items() if record.created_at >= wall_start]
    errors = {
        u: record.instance.error_message
        for u, record in state.instances.items()
        if "error" in state_name(record)
    }
    FIGURES[f"kill -9 {service}"] = {
        "storm_s": storm_seconds,
        "converged_in_s": converge_seconds,
        "sent": ledger.sent,
        "acknowledged": ledger.acknowledged,
        "statuses": dict(sorted(ledger.statuses.items())),
        "kills": 1,
        "instances_made": len(made),
        "converged": len(set(made) - set(unconverged)),
        "in_error": len(errors),
        "orphans": len(state.orphans()),
        "without_domain": len(state.without_domain()),
        "leaked_keys": len(state.leaks()),
        "missing_keys": len(state.missing_keys()),
        "metadata_acknowledged": len(ledger.metadata),
        "audits_acknowledged": dict(sorted(audited.items())),
        "events_lost": len(lost),
        "events_duplicated": len(duplicated),
    }

    assert not unconverged, unconverged
    assert not not_created, not_created
    assert not not_deleted, not_deleted
    assert not missing_metadata, missing_metadata
    assert not wrong_power, wrong_power
    assert not state.orphans(), state.orphans()
    assert not state.without_domain(), state.without_domain()
    assert not state.leaks(), state.leaks()
    assert not state.missing_keys(), state.missing_keys()
    assert not lost, lost
    assert not duplicated, duplicated
