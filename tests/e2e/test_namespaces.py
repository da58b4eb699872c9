"""Namespaces, keys, trusts and token revocation through the whole mesh:
REST via the gateway, and the official client (other-apis reference §3,
instances reference §5)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from shakenfist_client import apiclient

from devmesh.mesh import Mesh
from tests.e2e.test_vms import wait_for

pytestmark = pytest.mark.slow


def fresh(suffix: str) -> str:
    return f"ns-{suffix}-{uuid.uuid4().hex[:6]}"


def login(mesh: Mesh, namespace: str, key: str) -> httpx.Client:
    """A gateway client carrying a token of `namespace` from POST /auth."""
    reply = httpx.post(f"{mesh.gateway_url}/auth", json={"namespace": namespace, "key": key})
    assert reply.status_code == 200, reply.text
    token = reply.json()["access_token"]
    return httpx.Client(
        base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def refused(reply: httpx.Response, status: int, message: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] == message
    assert body["status"] == status


def until_401(client: httpx.Client, *, within: float) -> float:
    """Seconds until `GET /instances` answers 401 with this client's token."""
    started = time.monotonic()
    while True:
        reply = client.get("/instances")
        if reply.status_code == 401:
            return time.monotonic() - started
        assert reply.status_code == 200, reply.text
        assert time.monotonic() - started < within, "token still accepted"
        time.sleep(0.01)


def test_namespace_view_and_lifecycle(mesh: Mesh, rest: httpx.Client) -> None:
    name = fresh("life")
    created = rest.post("/auth/namespaces", json={"namespace": name, "key_name": "k1", "key": "s1"})
    assert created.status_code == 200, created.text
    view = created.json()
    assert view == {
        "state": "created",
        "metadata": {},
        "version": 5,
        "name": name,
        "keys": ["k1"],
        "trust": {"full": ["system"]},
    }
    assert list(view) == ["state", "metadata", "version", "name", "keys", "trust"]

    with login(mesh, name, "s1") as own:
        assert own.get("/auth/namespaces").json() == [view]
        assert own.get(f"/auth/namespaces/{name}").json() == view
        assert own.get(f"/auth/namespaces/{name}/keys").json() == ["k1"]
        added = own.post(f"/auth/namespaces/{name}/keys", json={"key_name": "k2", "key": "s2"})
        assert added.status_code == 200
        assert added.json() == "k2"
        assert own.get(f"/auth/namespaces/{name}/keys").json() == ["k1", "k2"]
        gone = own.delete(f"/auth/namespaces/{name}/keys/k2")
        assert gone.status_code == 200
        assert gone.json() is None
        refused(
            own.delete(f"/auth/namespaces/{name}/keys/k2"), 404, "key name not found in namespace"
        )
        refused(own.delete(f"/auth/namespaces/{name}"), 401, "unauthorized")

    assert name in [n["name"] for n in rest.get("/auth/namespaces").json()]
    deleted = rest.delete(f"/auth/namespaces/{name}")
    assert deleted.status_code == 200
    assert deleted.json() is None
    refused(rest.get(f"/auth/namespaces/{name}"), 404, "namespace not found")
    refused(httpx.post(f"{mesh.gateway_url}/auth", json={"namespace": name, "key": "s1"}), 404,
            "namespace not found")  # fmt: skip
    refused(rest.post("/auth/namespaces", json={"namespace": name}), 403, "namespace exists")


def test_management_refusals(mesh: Mesh, rest: httpx.Client) -> None:
    refused(rest.post("/auth/namespaces", json={}), 400, "no namespace specified")
    refused(rest.delete("/auth/namespaces/system"), 403, "you cannot delete the system namespace")
    refused(
        rest.post("/auth/namespaces/system/keys", json={"key_name": "_service_key_x", "key": "s"}),
        403,
        "illegal key name",
    )
    refused(rest.get(f"/auth/namespaces/{fresh('absent')}"), 404, "namespace not found")
    name = fresh("refusals")
    rest.post("/auth/namespaces", json={"namespace": name, "key_name": "k1", "key": "s1"})
    with login(mesh, name, "s1") as own:
        refused(own.post("/auth/namespaces", json={"namespace": fresh("x")}), 401, "unauthorized")
        refused(own.get("/auth/namespaces/system"), 404, "namespace not found")


def test_names_and_keys_are_bounded(mesh: Mesh, rest: httpx.Client) -> None:
    """Over-long or path-breaking names are 400 and write nothing; a secret
    longer than bcrypt reads is 400 to store and 401 (not 500) to log in with."""
    before = rest.get("/auth/namespaces").json()
    refused(rest.post("/auth/namespaces", json={"namespace": "n" * 64}), 400,
            "namespace must be at most 63 characters long, not 64")  # fmt: skip
    slash = rest.post("/auth/namespaces", json={"namespace": "a/b"})
    assert slash.status_code == 400 and "namespace may hold only" in slash.json()["error"]
    assert rest.get("/auth/namespaces").json() == before
    refused(rest.post("/auth/namespaces/system/keys", json={"key_name": "k" * 64, "key": "s"}),
            400, "key_name must be at most 63 characters long, not 64")  # fmt: skip
    refused(rest.post("/auth/namespaces/system/keys", json={"key_name": "long", "key": "s" * 73}),
            400, "key must be at most 72 bytes, not 73")  # fmt: skip
    kept = rest.get("/auth/namespaces/system/keys").json()
    assert "system" in kept and "long" not in kept and "k" * 64 not in kept
    refused(httpx.post(f"{mesh.gateway_url}/auth", json={"namespace": "system", "key": "s" * 73}),
            401, "unauthorized")  # fmt: skip


def test_the_last_system_key_cannot_be_deleted(mesh: Mesh, rest: httpx.Client) -> None:
    """Shaken Fist answers 200 and no one can log in as system again."""
    if rest.get("/auth/namespaces/system/keys").json() != ["system"]:
        pytest.skip("another test left a system key: deleting ours would revoke every token")
    refused(
        rest.delete("/auth/namespaces/system/keys/system"),
        409,
        "you cannot delete the last key of the system namespace: add another key first",
    )
    assert rest.get("/auth/namespaces/system/keys").json() == ["system"]
    with login(mesh, "system", mesh.system_key) as again:
        assert again.get("/auth/namespaces/system").status_code == 200
    # With another key beside it, a system key may go; the last one stays.
    added = rest.post("/auth/namespaces/system/keys", json={"key_name": "spare", "key": "s1"})
    assert added.status_code == 200, added.text
    assert rest.delete("/auth/namespaces/system/keys/spare").status_code == 200
    assert rest.get("/auth/namespaces/system/keys").json() == ["system"]


def test_trust_add_and_remove(mesh: Mesh, rest: httpx.Client) -> None:
    owner, friend = fresh("owner"), fresh("friend")
    for name in (owner, friend):
        rest.post("/auth/namespaces", json={"namespace": name, "key_name": "k1", "key": "s1"})
    with login(mesh, owner, "s1") as as_owner, login(mesh, friend, "s1") as as_friend:
        refused(as_friend.get(f"/auth/namespaces/{owner}"), 404, "namespace not found")
        added = as_owner.post(
            f"/auth/namespaces/{owner}/trust", json={"external_namespace": friend}
        )
        assert added.status_code == 200, added.text
        assert added.json()["trust"] == {"full": ["system", friend]}
        assert as_friend.get(f"/auth/namespaces/{owner}/keys").json() == ["k1"]
        assert sorted(n["name"] for n in as_friend.get("/auth/namespaces").json()) == sorted(
            [owner, friend]
        )
        removed = as_owner.delete(f"/auth/namespaces/{owner}/trust/{friend}")
        assert removed.status_code == 200
        assert removed.json()["trust"] == {"full": ["system"]}
        refused(as_friend.get(f"/auth/namespaces/{owner}/keys"), 404, "namespace not found")


def test_deleting_a_key_revokes_its_token_within_a_second(mesh: Mesh, rest: httpx.Client) -> None:
    name = fresh("revoke")
    rest.post("/auth/namespaces", json={"namespace": name, "key_name": "k1", "key": "s1"})
    rest.post(f"/auth/namespaces/{name}/keys", json={"key_name": "k2", "key": "s2"})
    with login(mesh, name, "s1") as doomed, login(mesh, name, "s2") as kept:
        assert doomed.get("/instances").status_code == 200
        assert kept.delete(f"/auth/namespaces/{name}/keys/k1").status_code == 200
        assert until_401(doomed, within=1.0) < 1.0
        reply = doomed.get("/instances")
        refused(reply, 401, "token revoked")
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert kept.get("/instances").status_code == 200


def test_rotating_a_key_revokes_its_token(mesh: Mesh, rest: httpx.Client) -> None:
    name = fresh("rotate")
    rest.post("/auth/namespaces", json={"namespace": name, "key_name": "k1", "key": "s1"})
    with login(mesh, name, "s1") as before:
        rotated = rest.put(f"/auth/namespaces/{name}/keys/k1", json={"key": "s1b"})
        assert rotated.status_code == 200, rotated.text
        assert rotated.json() is None
        until_401(before, within=1.0)
    with login(mesh, name, "s1b") as after:
        assert after.get("/instances").status_code == 200


def test_deleting_a_namespace_revokes_its_tokens(mesh: Mesh, rest: httpx.Client) -> None:
    name = fresh("gone")
    rest.post("/auth/namespaces", json={"namespace": name, "key_name": "k1", "key": "s1"})
    with login(mesh, name, "s1") as own:
        assert rest.delete(f"/auth/namespaces/{name}").status_code == 200
        until_401(own, within=1.0)


def test_a_namespace_with_instances_cannot_be_deleted(rest: httpx.Client) -> None:
    name = fresh("busy")
    rest.post("/auth/namespaces", json={"namespace": name})
    created = rest.post(
        "/instances",
        json={"name": "busy", "cpus": 1, "memory": 256, "disk": [{"size": 1}], "namespace": name},
    )
    assert created.status_code == 200, created.text
    refused(
        rest.delete(f"/auth/namespaces/{name}"), 400, "you cannot delete a namespace with instances"
    )
    instance = f"/instances/{created.json()['uuid']}"
    assert rest.delete(instance).status_code == 200
    # delete-wait blocks too: the namespace goes once its node agent is done.
    wait_for(lambda: rest.get(instance).json()["state"] == "deleted")
    assert rest.delete(f"/auth/namespaces/{name}").status_code == 200


def test_a_namespace_with_networks_cannot_be_deleted(rest: httpx.Client) -> None:
    name = fresh("nets")
    rest.post("/auth/namespaces", json={"namespace": name})
    body = {"netblock": "10.250.7.0/24", "name": "n", "provide_nat": False, "namespace": name}
    created = rest.post("/networks", json=body)
    assert created.status_code == 200, created.text
    refused(
        rest.delete(f"/auth/namespaces/{name}"), 400, "you cannot delete a namespace with networks"
    )
    assert rest.get(f"/auth/namespaces/{name}").status_code == 200  # still there
    assert rest.delete(f"/networks/{created.json()['uuid']}").status_code == 200
    assert rest.delete(f"/auth/namespaces/{name}").status_code == 200


# --- the official client --------------------------------------------------------------


@pytest.fixture
def client(mesh: Mesh) -> Iterator[apiclient.Client]:
    yield apiclient.Client(
        base_url=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
        async_strategy=apiclient.ASYNC_CONTINUE,
    )


def test_official_client_namespace_calls(mesh: Mesh, client: apiclient.Client) -> None:
    name, friend = fresh("client"), fresh("client-friend")
    made = client.create_namespace(name)
    assert made["name"] == name
    assert made["keys"] == []
    assert made["trust"] == {"full": ["system"]}
    assert name in [n["name"] for n in client.get_namespaces()]
    assert client.get_namespace(name)["state"] == "created"

    assert client.add_namespace_key(name, "deploy", "secret") == "deploy"
    assert client.get_namespace_keynames(name) == ["deploy"]
    as_namespace = apiclient.Client(
        base_url=mesh.gateway_url,
        namespace=name,
        key="secret",
        async_strategy=apiclient.ASYNC_CONTINUE,
    )
    assert as_namespace.get_instances() == []
    assert [n["name"] for n in as_namespace.get_namespaces()] == [name]

    trusted = client.add_namespace_trust(name, friend)
    assert trusted["trust"]["full"] == ["system", friend]
    assert client.remove_namespace_trust(name, friend)["trust"]["full"] == ["system"]

    # The client's update sends PUT /auth/namespaces/{ns}/keys, which Shaken
    # Fist does not route either (reference §3.6): not in our contract.
    with pytest.raises(apiclient.APIException):
        client.update_namespace_key(name, "deploy", "other")

    client.delete_namespace_key(name, "deploy")
    assert client.get_namespace_keynames(name) == []
    with pytest.raises(apiclient.UnauthenticatedException):
        as_namespace.get_instances()

    with pytest.raises(apiclient.UnauthorizedException):
        client.create_namespace(name)
    client.delete_namespace(name)
    with pytest.raises(apiclient.ResourceNotFoundException):
        client.get_namespace(name)


def test_namespace_metadata(mesh: Mesh, rest: httpx.Client, client: apiclient.Client) -> None:
    name, stranger = fresh("meta"), fresh("meta-stranger")
    for made in (name, stranger):
        reply = rest.post("/auth/namespaces", json={"namespace": made, "key_name": "k", "key": "s"})
        assert reply.status_code == 200, reply.text
    assert client.get_namespace_metadata(name) == {}
    client.set_namespace_metadata_item(name, "owner", "ops")
    assert (
        rest.post(
            f"/auth/namespaces/{name}/metadata", json={"key": "tier", "value": {"level": 2}}
        ).json()
        is None
    )
    assert client.get_namespace_metadata(name) == {"owner": "ops", "tier": {"level": 2}}
    with login(mesh, name, "s") as own:  # a namespace reads its own
        assert own.get(f"/auth/namespaces/{name}/metadata").json()["owner"] == "ops"
    with login(mesh, stranger, "s") as other:  # others do not even see it
        refused(other.get(f"/auth/namespaces/{name}/metadata"), 404, "namespace not found")
        refused(
            other.put(f"/auth/namespaces/{name}/metadata/x", json={"value": 1}),
            404,
            "namespace not found",
        )
    refused(
        rest.put(f"/auth/namespaces/{name}/metadata/empty", json={"value": ""}),
        400,
        "no value specified",
    )
    refused(rest.get(f"/auth/namespaces/{fresh('missing')}/metadata"), 404, "namespace not found")
    client.delete_namespace_metadata_item(name, "owner")
    client.delete_namespace_metadata_item(name, "never-set")  # silent, as upstream
    assert client.get_namespace_metadata(name) == {"tier": {"level": 2}}
