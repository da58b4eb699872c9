"""Networks through the whole mesh (other-apis §1): REST and the official
client. Instance NICs on them are in test_nics.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from shakenfist_client import apiclient

from devmesh.mesh import Mesh
from tests.e2e.test_vms import wait_for

pytestmark = pytest.mark.slow


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def client(mesh: Mesh) -> Iterator[apiclient.Client]:
    yield apiclient.Client(
        base_url=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
        async_strategy=apiclient.ASYNC_CONTINUE,
    )


def test_create_read_list_and_delete_with_the_official_client(client: apiclient.Client) -> None:
    name = fresh("net")
    made = client.allocate_network("10.42.0.0/24", False, True, name)
    assert made["state"] == "created"
    assert made["netblock"] == "10.42.0.0/24"
    assert (made["provide_dhcp"], made["provide_nat"], made["provide_dns"]) == (False, True, False)
    assert made["floating_gateway"] is None
    assert 0 < made["vxlan_id"] < 2**24
    assert client.get_network(name) == made
    assert client.get_network(made["uuid"]) == made
    assert made["uuid"] in [n["uuid"] for n in client.get_networks()]
    addresses = client.get_network_addresses(made["uuid"])
    assert [(a["address"], a["type"]) for a in addresses] == [
        ("10.42.0.0", "network"),
        ("10.42.0.1", "gateway"),
        ("10.42.0.255", "broadcast"),
    ]
    assert {tuple(a["user"]) for a in addresses} == {("network", made["uuid"])}

    gone = client.delete_network(made["uuid"])
    assert gone["state"] == "deleted"
    assert client.get_network(made["uuid"])["state"] == "deleted"  # by uuid, until purged
    assert made["uuid"] not in [n["uuid"] for n in client.get_networks()]
    assert made["uuid"] in [n["uuid"] for n in client.get_networks(all=True)]
    assert client.get_network_addresses(made["uuid"]) == []  # given back
    with pytest.raises(apiclient.ResourceNotFoundException):
        client.get_network(name)  # names find live networks only

    # Its history, newest first: the audit trail, and the states it went through.
    def messages() -> list[tuple[str, str]]:
        events = client.get_network_events(made["uuid"])
        return [(e["type"], e["message"]) for e in events]

    wait_for(lambda: ("audit", "delete request from REST API") in messages())
    assert ("audit", "create request from REST API") in messages()
    audits = client.get_network_events(made["uuid"], event_type="audit", limit=1)
    assert [e["message"] for e in audits] == ["delete request from REST API"]
    states = [
        e["extra"]["value"] for e in client.get_network_events(made["uuid"], event_type="mutate")
    ]
    assert states == ["deleted", "created"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"netblock": "10.0.0.1/24"}, 400, "cannot parse netblock: 10.0.0.1/24 has host bits set"),
        ({"netblock": "10.0.0.0/30"}, 400, "network is below minimum size of /29"),
        ({"netblock": "10.0.0.0/24", "namespace": "no-such-ns"}, 404, "namespace not found"),
        (
            {"netblock": "10.0.0.0/24", "name": "n" * 64},
            400,
            "name must be at most 63 characters long, not 64",
        ),
    ],
)
def test_refused_creates_write_nothing(
    rest: httpx.Client, body: dict[str, str], status: int, message: str
) -> None:
    before = rest.get("/networks", params={"all": True}).json()
    reply = rest.post("/networks", json={"name": fresh("refused"), **body})
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == message
    assert rest.get("/networks", params={"all": True}).json() == before


def test_other_namespaces_see_nothing_and_names_can_be_ambiguous(
    mesh: Mesh, rest: httpx.Client
) -> None:
    other = fresh("netns")
    made = rest.post("/auth/namespaces", json={"namespace": other, "key_name": "k", "key": "s"})
    assert made.status_code == 200, made.text
    token = httpx.post(f"{mesh.gateway_url}/auth", json={"namespace": other, "key": "s"}).json()[
        "access_token"
    ]
    name = fresh("twin")
    first = rest.post("/networks", json={"netblock": "10.50.0.0/24", "name": name}).json()
    rest.post("/networks", json={"netblock": "10.51.0.0/24", "name": name})
    with httpx.Client(
        base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}
    ) as theirs:
        assert theirs.get(f"/networks/{first['uuid']}").status_code == 404
        assert theirs.get(f"/networks/{first['uuid']}/addresses").status_code == 404
        assert first["uuid"] not in [n["uuid"] for n in theirs.get("/networks").json()]
        refused = theirs.post("/networks", json={"netblock": "10.52.0.0/24", "namespace": "system"})
        assert refused.status_code == 401
        assert (
            refused.json()["error"] == "only admins can create resources in a different namespace"
        )
    ambiguous = rest.get(f"/networks/{name}")
    assert ambiguous.status_code == 400
    assert (
        ambiguous.json()["error"]
        == f'multiple networks have the name "{name}" in namespace "system"'
    )


def test_a_nic_needs_a_network_of_the_instances_namespace(rest: httpx.Client) -> None:
    other = fresh("nicns")
    made = rest.post("/auth/namespaces", json={"namespace": other, "key_name": "k", "key": "s"})
    assert made.status_code == 200, made.text
    theirs = rest.post(
        "/networks", json={"netblock": "10.60.0.0/24", "name": fresh("nic"), "namespace": other}
    ).json()
    spec = {"name": "nic-vm", "cpus": 1, "memory": 128, "disk": [{"size": 1}]}
    before = len(rest.get("/instances", params={"all": True}).json())
    unknown = rest.post("/instances", json={**spec, "network": [{"network_uuid": "nope"}]})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "network nope not found"
    foreign = rest.post("/instances", json={**spec, "network": [{"network_uuid": theirs["uuid"]}]})
    assert foreign.status_code == 404
    assert foreign.json()["error"] == f"network {theirs['uuid']} does not exist"
    assert len(rest.get("/instances", params={"all": True}).json()) == before


def test_network_metadata_with_the_official_client(client: apiclient.Client) -> None:
    made = client.allocate_network("10.70.0.0/24", True, True, fresh("meta"))
    assert made["metadata"] == {}
    client.set_network_metadata_item(made["uuid"], "owner", "ops")
    assert client.get_network_metadata(made["uuid"]) == {"owner": "ops"}
    assert client.get_network(made["uuid"])["metadata"] == {"owner": "ops"}
    client.delete_network_metadata_item(made["uuid"], "owner")
    client.delete_network_metadata_item(made["uuid"], "never-set")
    assert client.get_network_metadata(made["uuid"]) == {}
    client.delete_network(made["uuid"])


def test_delete_all_networks_of_a_namespace(mesh: Mesh, rest: httpx.Client) -> None:
    namespace = fresh("netdel")
    made = rest.post("/auth/namespaces", json={"namespace": namespace, "key_name": "k", "key": "s"})
    assert made.status_code == 200, made.text
    mine = [
        rest.post("/networks", json={"netblock": f"10.8{i}.0.0/24", "namespace": namespace}).json()[
            "uuid"
        ]
        for i in range(2)
    ]
    kept = rest.post("/networks", json={"netblock": "10.89.0.0/24"}).json()["uuid"]
    refused = rest.request("DELETE", "/networks", json={"confirm": True})
    assert refused.status_code == 400
    assert refused.json()["error"] == "system user must specify parameter namespace"
    reply = rest.request("DELETE", "/networks", json={"confirm": True, "namespace": namespace})
    assert reply.status_code == 200, reply.text
    assert sorted(reply.json()) == sorted(mine)
    assert {rest.get(f"/networks/{u}").json()["state"] for u in mine} == {"deleted"}
    assert rest.get(f"/networks/{kept}").json()["state"] == "created"
    rest.delete(f"/networks/{kept}")
