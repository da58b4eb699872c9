"""A hypervisor disappears (issue 14): its node agent is killed with SIGKILL.
Its node goes `missing` once its presence lease expires, its instances say
so, placements go to the other node; it returns and reconciles with etcd
(an instance deleted meanwhile loses its domain); then it is deleted:
`deleted` for good, its instances deleted in etcd with their addresses
given back, its agent refused although it reports."""

from __future__ import annotations

import signal
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devmesh.mesh import Mesh
from launcher.host import Host
from tests.e2e.conftest import extra_node_host
from tests.e2e.test_vm_faults import domains_of
from tests.e2e.test_vms import created, view, wait_for

pytestmark = pytest.mark.slow

LEASE = 3
"""The lost node's presence lease TTL, in seconds."""


@pytest.fixture
def lost(mesh: Mesh) -> Iterator[tuple[str, Host]]:
    """A second node agent, with a short presence lease."""
    name = f"{mesh.node_name}-lost"
    with extra_node_host(mesh, name, {"SFMESH_PRESENCE_TTL": str(LEASE)}) as host:
        yield name, host


def node_state(rest: httpx.Client, name: str) -> Any:
    """The node's state; None while the scheduler has not yet recorded it."""
    answer = rest.get(f"/nodes/{name}")
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return answer.json()["state"]


def messages(rest: httpx.Client, name: str) -> list[str]:
    return [event["message"] for event in rest.get(f"/nodes/{name}/events").json()]


def forced_on(node: str, disk: list[dict[str, Any]]) -> dict[str, Any]:
    """A create placed on `node`."""
    return {"name": "vm-forced", "cpus": 1, "memory": 128, "disk": disk, "placed_on": node}


def say(line: str) -> None:
    print(line, file=sys.stderr)


def test_a_lost_hypervisor_goes_missing_returns_and_is_deleted(
    rest: httpx.Client, mesh: Mesh, lost: tuple[str, Host]
) -> None:
    name, host = lost
    wait_for(lambda: node_state(rest, name) == "created", timeout=20)
    network = rest.post(
        "/networks", json={"name": f"lost-{uuid.uuid4().hex[:6]}", "netblock": "10.247.3.0/24"}
    ).json()
    nic = [{"network_uuid": network["uuid"]}]
    disk = [{"size": 1, "base": "debian:11"}]
    kept = created(rest, "vm-kept", disk=disk, network=nic, placed_on=name)
    doomed = created(rest, "vm-doomed", disk=disk, placed_on=name)
    assert (kept["state"], doomed["state"]) == ("created", "created")
    assert view(rest, kept["uuid"])["node_state"] == "created"
    made_here: list[str] = []
    try:
        # The hypervisor dies: its agent killed, its domains left running.
        host.stop_role("node_agent", signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: node_state(rest, name) == "missing", timeout=LEASE + 10)
        took = time.monotonic() - killed
        say(f"\nnode missing {took:.1f} s after its agent was killed (lease {LEASE} s)")
        assert took < LEASE + 3
        assert view(rest, kept["uuid"])["node_state"] == "missing"
        listed = {i["uuid"]: i for i in rest.get("/instances").json()}
        assert listed[kept["uuid"]]["node_state"] == "missing"
        # The rest of the cloud goes on: placements go to the other node.
        for n in range(2):
            elsewhere = created(rest, f"vm-elsewhere-{n}", disk=disk)
            made_here.append(elsewhere["uuid"])
            assert (elsewhere["node"], elsewhere["state"]) == (mesh.node_name, "created")
        refused = rest.post("/instances", json=forced_on(name, disk))
        assert (refused.status_code, refused.json()["error"]) == (404, "Specified node not ready")
        # Deleted while it is gone: it waits for its node agent.
        assert rest.delete(f"/instances/{doomed['uuid']}").status_code == 200
        assert view(rest, doomed["uuid"])["state"] == "delete-wait"
        assert domains_of(doomed["uuid"])

        # It returns: created again, and reconciles with etcd.
        host.start_role("node_agent")
        wait_for(lambda: node_state(rest, name) == "created", timeout=20)
        wait_for(lambda: view(rest, doomed["uuid"])["state"] == "deleted", timeout=30)
        assert not domains_of(doomed["uuid"])
        assert view(rest, kept["uuid"])["node_state"] == "created"
        assert view(rest, kept["uuid"])["power_state"] == "on"
        wait_for(lambda: {"node missing: its presence lease expired",
                          "node back: its agent holds its presence lease again"}
                 <= set(messages(rest, name)), timeout=10)  # fmt: skip

        # Metadata, Shaken Fist's shapes and errors.
        path = f"/nodes/{name}/metadata"
        assert rest.put(f"{path}/rack", json={"value": "b2"}).json() is None
        assert rest.get(path).json() == {"rack": "b2"}
        assert rest.get(f"/nodes/{name}").json()["metadata"] == {"rack": "b2"}
        assert rest.put(f"{path}/rack", json={}).status_code == 400
        assert rest.get("/nodes/no-such-node/metadata").json()["error"] == "node not found"
        assert rest.delete(f"{path}/rack").json() is None
        assert rest.get(path).json() == {}

        # Deleted: final, its instances deleted in etcd, addresses given back.
        address = kept["interfaces"][0]["ipv4"]
        deleted = rest.delete(f"/nodes/{name}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["state"] == "deleted"
        assert rest.delete(f"/nodes/{name}").json()["state"] == "deleted"  # harmless
        assert view(rest, kept["uuid"])["state"] == "deleted"
        held = rest.get(f"/networks/{network['uuid']}/addresses").json()
        assert address not in [a["address"] for a in held]
        # Its agent still runs and reports: refused, and it stays deleted;
        # seeing its instances deleted, it removes their domains.
        wait_for(lambda: not domains_of(kept["uuid"]), timeout=30)
        time.sleep(LEASE)
        assert node_state(rest, name) == "deleted"
        elsewhere = created(rest, "vm-after-delete", disk=disk)
        made_here.append(elsewhere["uuid"])
        assert elsewhere["node"] == mesh.node_name
        forced = rest.post("/instances", json=forced_on(name, disk))
        assert (forced.status_code, forced.json()["error"]) == (404, "Specified node not ready")
        wait_for(lambda: "delete request from REST API" in messages(rest, name), timeout=10)
        audits = rest.get(f"/nodes/{name}/events", params={"event_type": "audit", "limit": 1})
        assert [e["message"] for e in audits.json()] == ["delete request from REST API"]
    finally:
        rest.delete(f"/nodes/{name}")  # ends its instances, whatever happened
        for made in made_here:
            rest.delete(f"/instances/{made}")
        gone = ("deleted",)
        wait_for(lambda: all(view(rest, m)["state"] in gone for m in made_here), timeout=30)
        rest.delete(f"/networks/{network['uuid']}")
