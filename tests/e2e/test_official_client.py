"""The official shakenfist-client 0.8.3, unchanged, against the mesh: every
call it offers on the routes that exist, through `apiclient.Client` and
through `sf-client --json`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shakenfist_client import apiclient

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from tests.node_records import put_node

pytestmark = pytest.mark.slow

SF_CLIENT = str(Path(sys.executable).parent / "sf-client")
DISK = {"size": 8, "base": "debian:11", "bus": None, "type": "disk"}


@pytest.fixture(scope="module")
def client(mesh: Mesh, isolated_home: Path) -> Iterator[apiclient.Client]:
    """A client configured only by the ~/.shakenfist that make run writes.

    Creates do not wait for the node agent (the `continue` async strategy;
    test_vms.py shows the default, blocking one); deletes here use `waiting`.
    """
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    yield apiclient.Client(async_strategy=apiclient.ASYNC_CONTINUE)


@pytest.fixture(scope="module")
def waiting(client: apiclient.Client) -> apiclient.Client:
    """The same, polling (up to a minute) until what it deletes is
    `deleted`: a placed instance waits in delete-wait for its node agent."""
    return apiclient.Client(async_strategy=apiclient.ASYNC_PAUSE)


def sf_client(*args: str, strategy: str = "continue") -> Any:
    """Run `sf-client --json --async <strategy> ...` and decode what it prints."""
    done = subprocess.run(
        [SF_CLIENT, "--json", "--async", strategy, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_client_with_no_arguments_finds_the_mesh(client: apiclient.Client) -> None:
    assert isinstance(apiclient.Client().get_instances(), list)


def test_create_get_list_delete(client: apiclient.Client, waiting: apiclient.Client) -> None:
    created = client.create_instance("from-client", 1, 256, [], [dict(DISK)], None, None)
    assert created["state"] == "initial"
    assert created["disk_spec"] == [DISK]
    assert created["namespace"] == "system"
    uuid = created["uuid"]
    assert client.get_instance(uuid)["name"] == "from-client"
    assert client.get_instance("from-client")["uuid"] == uuid
    assert client.get_instance(uuid, namespace="system")["uuid"] == uuid
    assert uuid in [i["uuid"] for i in client.get_instances()]
    assert client.get_instance_interfaces(uuid) == []

    deleted = waiting.delete_instance(uuid)  # what it last read: deleted
    assert (deleted["uuid"], deleted["state"]) == (uuid, "deleted")
    assert client.get_instance(uuid)["state"] == "deleted"
    assert uuid not in [i["uuid"] for i in client.get_instances()]
    assert uuid in [i["uuid"] for i in client.get_instances(all=True)]


def test_refusals_raise_the_mapped_exceptions(client: apiclient.Client) -> None:
    with pytest.raises(apiclient.RequestMalformedException):
        client.create_instance("bad name", 1, 256, [], [dict(DISK)], None, None)
    with pytest.raises(apiclient.ResourceNotFoundException):
        client.get_instance("00000000-0000-4000-8000-000000000000")


@pytest.mark.parametrize("cpus", [16, 17])
def test_more_vcpus_than_allowed_raise_insufficient_resources(
    client: apiclient.Client, cpus: int
) -> None:
    """16 vCPUs fit no node of the test machine; 17 are beyond the api's
    --max-cpus: both are a well-formed request nothing can hold."""
    with pytest.raises(apiclient.InsufficientResourcesException):
        client.create_instance("too-wide", cpus, 256, [], [dict(DISK)], None, None)
    assert "too-wide" not in [i["name"] for i in client.get_instances(all=True)]


def test_metadata(client: apiclient.Client) -> None:
    uuid = client.create_instance("meta", 1, 256, [], [dict(DISK)], None, None)["uuid"]
    assert client.get_instance_metadata(uuid) == {}
    client.set_instance_metadata_item(uuid, "owner", "ops")
    client.set_instance_metadata_item(uuid, "tags", ["a", "b"])
    client.set_instance_metadata_item(uuid, "affinity", {"web": 10})
    assert client.get_instance_metadata(uuid) == {
        "owner": "ops",
        "tags": ["a", "b"],
        "affinity": {"web": 10},
    }
    with pytest.raises(apiclient.RequestMalformedException):
        client.set_instance_metadata_item(uuid, "tags", "not-a-list")
    client.delete_instance_metadata_item(uuid, "owner")
    client.delete_instance_metadata_item(uuid, "never-set")
    assert client.get_instance_metadata(uuid) == {"tags": ["a", "b"], "affinity": {"web": 10}}
    assert client.get_instance(uuid)["metadata"]["affinity"] == {"web": 10}


def test_cli_create_show_metadata_delete(client: apiclient.Client) -> None:
    created = sf_client(
        "instance", "create", "cli-made", "1", "256", "-d", "8@debian:11", "--no-side-channels"
    )
    uuid = created["uuid"]
    assert created["disk_spec"][0]["base"] == "debian:11"
    assert created["side_channels"] == []
    assert sf_client("instance", "show", uuid)["name"] == "cli-made"
    assert uuid in [i["uuid"] for i in sf_client("instance", "list")["instances"]]
    assert sf_client("instance", "set-metadata", uuid, "role", "db") == {}
    assert client.get_instance_metadata(uuid) == {"role": "db"}
    assert sf_client("instance", "delete-metadata", uuid, "role") == {}
    sf_client("instance", "delete", uuid, strategy="pause")  # waits until deleted
    assert client.get_instance(uuid)["state"] == "deleted"


def test_delete_all(client: apiclient.Client, waiting: apiclient.Client) -> None:
    uuids = {
        client.create_instance(f"bulk-{n}", 1, 256, [], [dict(DISK)], None, None)["uuid"]
        for n in range(3)
    }
    with pytest.raises(apiclient.RequestMalformedException):
        client.delete_all_instances(None)
    deleted = waiting.delete_all_instances("system")  # waits until each is deleted
    assert uuids <= set(deleted)
    assert {client.get_instance(uuid)["state"] for uuid in uuids} == {"deleted"}


def test_instance_events_by_type_and_limit(client: apiclient.Client) -> None:
    uuid = client.create_instance("evented", 1, 256, [], [dict(DISK)], None, None)["uuid"]
    client.set_instance_metadata_item(uuid, "owner", "ops")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = client.get_instance_events(uuid)
        if len(events) >= 6:
            break
        time.sleep(0.05)
    messages = [event["message"] for event in events]
    assert "set attribute" in messages
    assert "create request from REST API" in messages
    # Newest first: placement comes before the record is written.
    assert messages.index("db record created") < messages.index("schedule complete")
    assert {event["type"] for event in events} <= {"audit", "mutate", "status"}
    assert all(event["extra"]["request-id"] for event in events if event["type"] != "status")
    timestamps = [event["timestamp"] for event in events]
    assert timestamps == sorted(timestamps, reverse=True)

    audits = client.get_instance_events(uuid, event_type="audit", limit=2)
    assert [event["message"] for event in audits] == [
        "set metadata key request from REST API",
        "create request from REST API",
    ]
    with pytest.raises(apiclient.RequestMalformedException):
        client.get_instance_events(uuid, event_type="gossip")


def test_cli_instance_events(client: apiclient.Client) -> None:
    uuid = client.create_instance("cli-evented", 1, 256, [], [dict(DISK)], None, None)["uuid"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(client.get_instance_events(uuid)) < 4:
        time.sleep(0.05)
    # The CLI sends --limit as a string; sfmesh takes numeric strings.
    shown = sf_client("instance", "events", uuid, "--type", "audit", "--limit", "1")
    assert [event["message"] for event in shown] == ["create request from REST API"]


def test_power_operations_before_creation_raise_not_ready(client: apiclient.Client) -> None:
    uuid = client.create_instance("powered", 1, 256, [], [dict(DISK)], None, None)["uuid"]
    for call in (
        client.power_on_instance,
        client.power_off_instance,
        client.pause_instance,
        client.unpause_instance,
        client.reboot_instance,
    ):
        with pytest.raises(apiclient.DependenciesNotReadyException):
            call(uuid)


def test_network_and_interface_commands_of_sf_client(client: apiclient.Client) -> None:
    name = f"cli-net-{uuid.uuid4().hex[:6]}"
    made = sf_client("network", "create", name, "10.251.16.0/24", "--no-dhcp")
    assert (made["name"], made["netblock"], made["provide_dhcp"]) == (name, "10.251.16.0/24", False)
    assert sf_client("network", "show", name)["uuid"] == made["uuid"]
    addresses = sf_client("network", "addresses", name)
    assert [a["type"] for a in addresses] == ["network", "gateway", "broadcast"]

    instance = client.create_instance(
        "cli-nic", 1, 128, [{"network_uuid": made["uuid"]}], [dict(DISK)], None, None
    )
    try:
        (nic,) = sf_client("network", "instances", name)
        assert nic["instance_uuid"] == instance["uuid"]
        assert sf_client("interface", "float", nic["uuid"]) == {}
        (shown,) = sf_client("interface", "show", nic["uuid"])["network_interfaces"]
        assert shown["floating"] is not None
        assert sf_client("interface", "defloat", nic["uuid"]) == {}
        (shown,) = sf_client("interface", "show", nic["uuid"])["network_interfaces"]
        assert shown["floating"] is None
        events = sf_client("network", "events", name, "--type", "audit")
        assert "adding floating ip" in [e["message"] for e in events]

        assert sf_client("interface", "set-metadata", nic["uuid"], "role", "frontend") == {}
        client.set_interface_metadata_item(nic["uuid"], "rank", 2)
        assert client.get_interface_metadata(nic["uuid"]) == {"role": "frontend", "rank": 2}
        assert sf_client("interface", "delete-metadata", nic["uuid"], "role") == {}
        client.delete_interface_metadata_item(nic["uuid"], "missing")  # fine
        assert client.get_interface_metadata(nic["uuid"]) == {"rank": 2}
        (shown,) = client.get_instance_interfaces(instance["uuid"])
        assert shown["metadata"] == {"rank": 2}
    finally:
        client.delete_instance(instance["uuid"])
    assert sf_client("network", "delete", name)["state"] in ("deleted", "delete-wait")


def test_node_commands_of_sf_client(client: apiclient.Client, mesh: Mesh) -> None:
    name = put_node(mesh, f"cli-node-{uuid.uuid4().hex[:6]}")
    assert name in [node["name"] for node in sf_client("node", "list")]
    shown = sf_client("node", "show", name)
    assert (shown["state"], shown["metadata"], shown["is_cluster_maintainer"]) == (
        "missing",
        {},
        False,
    )
    client.set_node_metadata_item(name, "rack", "b2")
    assert sf_client("node", "show", name)["metadata"] == {"rack": "b2"}
    for pretty in (("node", "show", name), ("node", "list")):  # reads every key it prints
        done = subprocess.run([SF_CLIENT, *pretty], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert name in done.stdout
    client.delete_node_metadata_item(name, "rack")
    assert client.get_node_metadata(name) == {}
    assert sf_client("node", "delete", name)["state"] == "deleted"
    assert client.get_node(name)["state"] == "deleted"
    deadline = time.monotonic() + 10
    while not (events := sf_client("node", "events", name, "--type", "audit", "--limit", "1")):
        assert time.monotonic() < deadline, "no audit event on the node"
        time.sleep(0.2)
    assert [event["message"] for event in events] == ["delete request from REST API"]
