"""Usage events end to end: the e2e mesh's node agent samples every
`USAGE_INTERVAL` seconds; a running boot-sector instance with a NIC gets
`usage` events in Shaken Fist's shape whose CPU time grows, a powered-off
one gets none, and `sf-client instance events -t usage` shows them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from tests.e2e.conftest import USAGE_INTERVAL
from tests.e2e.test_official_client import sf_client
from tests.e2e.test_vms import created, wait_for

pytestmark = pytest.mark.slow


def usage_of(rest: httpx.Client, uuid_: str) -> list[dict[str, Any]]:
    """The instance's `usage` events, oldest first, filtered as the client asks."""
    reply = rest.request(
        "GET", f"/instances/{uuid_}/events", json={"event_type": "usage", "limit": -1}
    )
    assert reply.status_code == 200, reply.text
    return list(reversed(reply.json()))


def test_a_running_instance_gets_usage_events_and_a_stopped_one_none(
    rest: httpx.Client, mesh: Mesh, isolated_home: Path
) -> None:
    net = rest.post(
        "/networks", json={"netblock": "10.251.60.0/29", "name": f"u-{uuid.uuid4().hex[:6]}"}
    ).json()
    instance = created(rest, "vm-usage", network=[{"network_uuid": net["uuid"]}])
    assert instance["state"] == "created", instance.get("error_message")
    uuid_ = instance["uuid"]
    (mac,) = [nic["macaddr"] for nic in instance["interfaces"]]

    samples = wait_for(lambda: (found := usage_of(rest, uuid_)) and len(found) >= 3 and found, 30)
    assert {(e["type"], e["message"]) for e in samples} == {("usage", "usage")}
    cpu = [e["extra"]["cpu usage"]["cpu time ns"] for e in samples]
    assert cpu[0] < cpu[-1], cpu
    latest = samples[-1]["extra"]
    assert set(latest["cpu usage"]) == {"cpu time ns", "system time ns", "user time ns"}
    assert set(latest["disk usage"]) == {d["device"] for d in instance["disks"]}
    root = latest["disk usage"]["vda"]
    assert root["read bytes"] >= 512 and root["read requests"] >= 1  # the boot sector was read
    assert root["actual bytes on disk"] > 0
    assert list(latest["network usage"]) == [mac]
    assert set(latest["network usage"][mac]) == {
        f"{way} {what}"
        for way in ("read", "write")
        for what in ("bytes", "packets", "errors", "drops")
    }

    # The client's filter: only usage events, the same ones.
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    shown = sf_client("instance", "events", "-t", "usage", "-l", "1000", uuid_)
    assert shown and {e["type"] for e in shown} == {"usage"}
    assert {e["timestamp"] for e in samples} <= {e["timestamp"] for e in shown}

    assert rest.post(f"/instances/{uuid_}/poweroff").status_code == 200
    time.sleep(USAGE_INTERVAL + 1)  # a sample read before the stop may land meanwhile
    stopped = len(usage_of(rest, uuid_))
    time.sleep(3 * USAGE_INTERVAL)
    assert len(usage_of(rest, uuid_)) == stopped

    rest.delete(f"/instances/{uuid_}")
    wait_for(lambda: rest.get(f"/instances/{uuid_}").json()["state"] == "deleted")
    rest.delete(f"/networks/{net['uuid']}")
