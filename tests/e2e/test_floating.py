"""Floating addresses through REST and the official client: float and
defloat an interface, a create that asks for one, what is refused, and the
pool's reservations coming and going with them (GET
/networks/floating/addresses, system only)."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from shakenfist_client import apiclient

from devmesh.mesh import Mesh
from tests.e2e.conftest import FLOATING_POOL
from tests.e2e.test_nics import BOOT_DISK, network
from tests.e2e.test_vms import created, view, wait_for

SPEC = {"cpus": 1, "memory": 128, "disk": BOOT_DISK}


@pytest.fixture
def client(mesh: Mesh) -> Iterator[apiclient.Client]:
    yield apiclient.Client(
        base_url=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
        async_strategy=apiclient.ASYNC_CONTINUE,
    )


def pool(rest: httpx.Client) -> dict[str, list[str]]:
    """The floating pool's reservations: address -> [type, *user]."""
    reply = rest.get("/networks/floating/addresses")
    assert reply.status_code == 200, reply.text
    return {entry["address"]: [entry["type"], *entry["user"]] for entry in reply.json()}


def audits(rest: httpx.Client, net: dict[str, Any]) -> list[tuple[str, Any]]:
    """The network's audit events, newest first: (message, extra without the
    request id)."""
    events = rest.get(f"/networks/{net['uuid']}/events", params={"event_type": "audit"}).json()
    return [
        (event["message"], {k: v for k, v in event["extra"].items() if k != "request-id"})
        for event in events
    ]


def interface(rest: httpx.Client, uuid: str) -> dict[str, Any]:
    return dict(rest.get(f"/interfaces/{uuid}").json())


def test_float_and_defloat_an_interface(rest: httpx.Client, client: apiclient.Client) -> None:
    net = network(rest, "10.251.10.0/24")
    made = created(rest, "float-me", **SPEC, network=[{"network_uuid": net["uuid"]}])
    nic = made["interfaces"][0]
    assert nic["floating"] is None
    try:
        reply = rest.post(f"/interfaces/{nic['uuid']}/float")
        assert (reply.status_code, reply.json()) == (200, None)
        floating = interface(rest, nic["uuid"])["floating"]
        assert ipaddress.IPv4Address(floating) in ipaddress.IPv4Network(FLOATING_POOL)
        assert floating != "10.254.9.1"  # the router
        assert pool(rest)[floating] == ["floating", "networkinterface", nic["uuid"]]
        # Floating again keeps the address.
        client.float_interface(nic["uuid"])
        assert interface(rest, nic["uuid"])["floating"] == floating

        client.defloat_interface(nic["uuid"])
        assert interface(rest, nic["uuid"])["floating"] is None
        assert floating not in pool(rest)
        wanted = {"floating": floating, "inner": nic["ipv4"], "interface": nic["uuid"]}
        wait_for(lambda: audits(rest, net)[:1] == [("removing floating", wanted)])
        assert audits(rest, net)[1:] == [
            ("adding floating ip", wanted),  # once: floating again changed nothing
            ("create request from REST API", {}),
        ]
        reply = rest.post(f"/interfaces/{nic['uuid']}/defloat")  # nothing to give back: fine
        assert (reply.status_code, reply.json()) == (200, None)
    finally:
        rest.delete(f"/instances/{made['uuid']}")
        rest.delete(f"/networks/{net['uuid']}")


def test_a_create_can_float_and_its_delete_gives_the_address_back(rest: httpx.Client) -> None:
    net = network(rest, "10.251.11.0/24")
    made = created(
        rest, "float-at-create", **SPEC, network=[{"network_uuid": net["uuid"], "float": True}]
    )
    floating = made["interfaces"][0]["floating"]
    try:
        assert pool(rest)[floating] == [
            "floating",
            "networkinterface",
            made["interfaces"][0]["uuid"],
        ]
    finally:
        rest.delete(f"/instances/{made['uuid']}")
        rest.delete(f"/networks/{net['uuid']}")
    wait_for(lambda: view(rest, made["uuid"])["state"] == "deleted")
    assert floating not in pool(rest)
    # A deleted interface does not float again; defloating it changes nothing.
    nic = made["interfaces"][0]["uuid"]
    again = rest.post(f"/interfaces/{nic}/float")
    assert (again.status_code, again.json()["error"]) == (409, "interface is deleted")
    assert rest.post(f"/interfaces/{nic}/defloat").status_code == 200
    assert floating not in pool(rest)


def test_what_cannot_float_is_refused(rest: httpx.Client, mesh: Mesh) -> None:
    before = pool(rest)
    missing = rest.post("/interfaces/00000000-0000-4000-8000-000000000000/float")
    assert (missing.status_code, missing.json()["error"]) == (404, "interface not found")

    plain = network(rest, "10.251.12.0/24", provide_nat=False)
    made = created(rest, "no-nat", **SPEC, network=[{"network_uuid": plain["uuid"]}])
    try:
        refused = rest.post(f"/interfaces/{made['interfaces'][0]['uuid']}/float")
        assert refused.status_code == 409
        assert refused.json()["error"] == (
            "interface network does not provide NAT, so it cannot float"
        )
        at_create = rest.post(
            "/instances",
            json={
                **SPEC,
                "name": "no-nat-float",
                "network": [{"network_uuid": plain["uuid"], "float": True}],
            },
        )
        assert at_create.status_code == 409
        assert "does not provide NAT" in at_create.json()["error"]
    finally:
        rest.delete(f"/instances/{made['uuid']}")
        rest.delete(f"/networks/{plain['uuid']}")
    assert pool(rest) == before

    # The pool is the system's to see.
    peek = f"pool-peek-{uuid.uuid4().hex[:6]}"
    rest.post("/auth/namespaces", json={"namespace": peek, "key_name": "k", "key": "s3cr3t"})
    token = httpx.post(
        f"{mesh.gateway_url}/auth", json={"namespace": peek, "key": "s3cr3t"}
    ).json()["access_token"]
    hidden = httpx.get(
        f"{mesh.gateway_url}/networks/floating/addresses",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert hidden.status_code == 404


def test_interface_metadata_errors(rest: httpx.Client) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for method, path, body in (
        ("GET", f"/interfaces/{missing}/metadata", None),
        ("POST", f"/interfaces/{missing}/metadata", {"key": "a", "value": 1}),
        ("DELETE", f"/interfaces/{missing}/metadata/a", None),
    ):
        reply = rest.request(method, path, json=body)
        assert (reply.status_code, reply.json()["error"]) == (404, "interface not found")
    net = network(rest, "10.251.17.0/24")
    made = created(rest, "nic-meta", **SPEC, network=[{"network_uuid": net["uuid"]}])
    nic = made["interfaces"][0]["uuid"]
    try:
        bodies: tuple[tuple[dict[str, object], str], ...] = (
            ({"value": 1}, "no key specified"),
            ({"key": "a"}, "no value specified"),
            ({"key": "tags", "value": "x"}, 'value for "tags" key should be a JSON list'),
        )
        for body, message in bodies:
            reply = rest.post(f"/interfaces/{nic}/metadata", json=body)
            assert (reply.status_code, reply.json()["error"]) == (400, message)
        assert rest.put(f"/interfaces/{nic}/metadata/a", json={"value": {"b": 1}}).json() is None
        assert rest.get(f"/interfaces/{nic}/metadata").json() == {"a": {"b": 1}}
        assert "<li>interface-metadata</li>" in rest.get("/").text
    finally:
        rest.delete(f"/instances/{made['uuid']}")
        rest.delete(f"/networks/{net['uuid']}")
