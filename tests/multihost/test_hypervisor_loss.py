"""A hypervisor host disappears (issue 14): every process of hv2 is
SIGKILLed. Its node goes `missing` once its presence lease runs out, its
instances say so, and the rest of the cloud is unaffected: creates through
every gateway land on hv1. Then hv2 comes back: its node is `created`
again and its agent reconciles with etcd as after a restart (an instance
deleted while it was gone loses its domain).

The hypervisors drive the one libvirtd of this machine
(``devmesh/cloud/__init__.py``), so hv2's domains outlive its processes, as
a host's would outlive its agent; what the test takes away is the host's
whole share of the mesh."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx

from devmesh.cloud.cloud import Cloud
from devmesh.cloud.layout import CONTROL_PLANE
from tests.e2e.test_vms import BOOT, wait_for
from tests.multihost.test_cloud import settled

LOST = "hv2"
KEPT = "hv1"
MISSING_WITHIN = 30.0
"""Seconds the lost node may take to be `missing`: its presence lease (the
node agents' `--presence-ttl`) and the scheduler noticing."""


def spec(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **BOOT, **fields}


def create(rest: httpx.Client, body: dict[str, Any]) -> str:
    """The uuid of the instance a create made."""
    reply = rest.post("/instances", json=body)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["uuid"])


def test_a_lost_hypervisor_goes_missing_and_returns(cloud: Cloud, token: str) -> None:
    with cloud.rest(CONTROL_PLANE[0], token) as rest:

        def node_state() -> Any:
            return rest.get(f"/nodes/{LOST}").json()["state"]

        kept = settled(rest, create(rest, spec("lost-kept", placed_on=LOST)))
        doomed = settled(rest, create(rest, spec("lost-doomed", placed_on=LOST)))
        assert (kept["state"], doomed["state"]) == ("created", "created")

        cloud.hosts[LOST].kill()
        killed = time.monotonic()
        wait_for(lambda: node_state() == "missing", timeout=MISSING_WITHIN)
        print(
            f"\n{LOST} missing {time.monotonic() - killed:.1f} s after the host was lost",
            file=sys.stderr,
        )
        assert rest.get(f"/instances/{kept['uuid']}").json()["node_state"] == "missing"

        # The rest of the cloud is unaffected: every gateway creates, on hv1.
        for host in CONTROL_PLANE:
            with cloud.rest(host, token) as other:
                made = other.post("/instances", json=spec(f"while-lost-{host}"))
                assert made.status_code == 200, made.text
                assert settled(other, made.json()["uuid"])["state"] == "created"
                assert made.json()["node"] == KEPT
        assert rest.delete(f"/instances/{doomed['uuid']}").status_code == 200

        # It comes back and reconciles with etcd.
        cloud.hosts[LOST].launch("node_agent")
        cloud.hosts[LOST].wait_serving(["node_agent"])
        wait_for(lambda: node_state() == "created", timeout=30)
        wait_for(lambda: doomed["uuid"] not in cloud.domains(), timeout=30)
        assert cloud.domains().get(kept["uuid"]) == LOST
        assert rest.get(f"/instances/{kept['uuid']}").json()["node_state"] == "created"
