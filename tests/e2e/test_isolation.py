"""The isolation matrix through the whole mesh: every instance route against every
kind of caller (instances reference §1.1, §5.3, §5.5).

The owner and system are served; another namespace gets 404 `instance not
found` (never 403) and never sees the instance in a list; no token, an
expired token and a revoked one get 401.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from devmesh.mesh import Mesh
from guests.serve import ImageServer
from services.common.secrets import load_or_create_secret
from services.common.tokens import TokenAuthority

pytestmark = pytest.mark.slow

RUN = uuid.uuid4().hex[:6]
OWNER_NS = f"iso-owner-{RUN}"
OTHER_NS = f"iso-other-{RUN}"
INSTANCE = {"cpus": 1, "memory": 256}

ALLOWED = ("owner", "system")
CALLERS = ("owner", "system", "other", "none", "expired", "revoked")
DENIED = {
    "other": (404, "instance not found"),
    "none": (401, "Missing Authorization Header"),
    "expired": (401, "Signature has expired"),
    "revoked": (401, "token revoked"),
}


@dataclass
class World:
    """Two namespaces, an instance in each, and a header set per caller."""

    mesh: Mesh
    headers: dict[str, dict[str, str]]
    mine: dict[str, Any]
    theirs: dict[str, Any]
    spec: dict[str, Any]
    """What the tests' instances are made of."""

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.mesh.gateway_url, headers=self.headers[who], timeout=30)


def _token(mesh: Mesh, namespace: str, key: str) -> str:
    reply = httpx.post(f"{mesh.gateway_url}/auth", json={"namespace": namespace, "key": key})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(mesh: Mesh, token: str, image_server: ImageServer) -> Iterator[World]:
    # An image that is never published: the instances stop in `error`, never
    # `created`, so power operations are refused for their state (406).
    spec = {**INSTANCE, "disk": [{"size": 1, "base": image_server.url(f"iso-missing-{RUN}.raw")}]}
    system = httpx.Client(base_url=mesh.gateway_url, headers=_bearer(token), timeout=30)
    for name in (OWNER_NS, OTHER_NS):
        made = system.post(
            "/auth/namespaces", json={"namespace": name, "key_name": "k1", "key": "s1"}
        )
        assert made.status_code == 200, made.text
    assert system.post(f"/auth/namespaces/{OWNER_NS}/keys", json={"key_name": "kr", "key": "sr"})
    owner = _token(mesh, OWNER_NS, "s1")
    revoked = _token(mesh, OWNER_NS, "sr")
    assert system.delete(f"/auth/namespaces/{OWNER_NS}/keys/kr").status_code == 200
    expired = TokenAuthority(
        internal_secret="unused",
        user_secret=load_or_create_secret(mesh.state_dir / "jwt.secret"),
        ttl_seconds=-10,
    ).issue_user(OWNER_NS, "k1", "whatever")
    headers = {
        "owner": _bearer(owner),
        "system": _bearer(token),
        "other": _bearer(_token(mesh, OTHER_NS, "s1")),
        "none": {},
        "expired": _bearer(expired),
        "revoked": _bearer(revoked),
    }
    with httpx.Client(base_url=mesh.gateway_url, headers=headers["owner"], timeout=30) as own:
        mine = own.post("/instances", json={**spec, "name": f"iso-mine-{RUN}"})
    assert mine.status_code == 200, mine.text
    theirs = system.post(
        "/instances",
        json={**spec, "name": f"iso-theirs-{RUN}", "namespace": OTHER_NS},
    )
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["namespace"] == OTHER_NS
    try:
        yield World(mesh, headers, mine.json(), theirs.json(), spec)
    finally:
        for made in (mine.json(), theirs.json()):
            system.delete(f"/instances/{made['uuid']}")
        system.close()


# (method, path under /instances/{ref}, body, owner's status)
ROUTES: list[tuple[str, str, dict[str, Any] | None, int]] = [
    ("GET", "", None, 200),
    ("GET", "/interfaces", None, 200),
    ("GET", "/events", None, 200),
    ("GET", "/metadata", None, 200),
    ("PUT", "/metadata/by-{who}", {"value": "{who}"}, 200),
    ("POST", "/metadata", {"key": "post-{who}", "value": "{who}"}, 200),
    ("DELETE", "/metadata/post-{who}", None, 200),
    # Power needs a created instance (these end in `error`): the owner is told
    # so, the others not even that.
    ("POST", "/poweron", None, 406),
    ("POST", "/rebootsoft", None, 406),
]


def _fill(value: Any, who: str) -> Any:
    if isinstance(value, str):
        return value.replace("{who}", who)
    if isinstance(value, dict):
        return {k: _fill(v, who) for k, v in value.items()}
    return value


def _check(reply: httpx.Response, who: str, allowed_status: int) -> None:
    if who in ALLOWED:
        assert reply.status_code == allowed_status, reply.text
        return
    status, message = DENIED[who]
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == message
    assert reply.status_code != 403


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize(("method", "suffix", "body", "allowed_status"), ROUTES)
@pytest.mark.parametrize("by", ["uuid", "name"])
def test_instance_route(
    world: World,
    who: str,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    allowed_status: int,
    by: str,
) -> None:
    ref = world.mine[by]
    with world.client(who) as client:
        reply = client.request(
            method, f"/instances/{ref}{_fill(suffix, who)}", json=_fill(body, who)
        )
    _check(reply, who, allowed_status)


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("route", [":watch", "/events:watch"])
def test_instance_stream(world: World, who: str, route: str) -> None:
    with (
        world.client(who) as client,
        client.stream("GET", f"/instances/{world.mine['uuid']}{route}", timeout=10) as reply,
    ):
        if who in ALLOWED:
            assert reply.status_code == 200
            if route == ":watch":
                first = orjson.loads(next(reply.iter_lines()))
                assert first["result"]["instance"]["uuid"] == world.mine["uuid"]
            return
        reply.read()
        _check(reply, who, 200)


@pytest.mark.parametrize("who", CALLERS)
def test_delete(world: World, who: str) -> None:
    with world.client("owner") as own:
        made = own.post("/instances", json={**world.spec, "name": f"iso-doomed-{RUN}"}).json()
    with world.client(who) as client:
        reply = client.delete(f"/instances/{made['uuid']}")
    _check(reply, who, 200)
    with world.client("system") as system:
        state = system.get(f"/instances/{made['uuid']}").json()["state"]
        asked = state in ("delete-wait", "deleted")  # placed: its node agent ends it
        assert asked == (who in ALLOWED)
        if not asked:
            system.delete(f"/instances/{made['uuid']}")


@pytest.mark.parametrize("who", CALLERS)
def test_list(world: World, who: str) -> None:
    with world.client(who) as client:
        reply = client.get("/instances", params={"all": True})
    if who in DENIED and who != "other":
        _check(reply, who, 200)
        return
    assert reply.status_code == 200, reply.text
    seen = {entry["uuid"] for entry in reply.json()}
    namespaces = {entry["namespace"] for entry in reply.json()}
    mine, theirs = world.mine["uuid"], world.theirs["uuid"]
    if who == "owner":
        assert mine in seen and theirs not in seen
        assert namespaces == {OWNER_NS}
    elif who == "other":
        assert theirs in seen and mine not in seen
        assert namespaces == {OTHER_NS}
    else:
        assert {mine, theirs} <= seen


def test_watch_of_every_instance_hides_other_namespaces(world: World) -> None:
    seen: list[str] = []
    deadline = time.monotonic() + 0.5
    with (
        world.client("other") as client,
        client.stream("GET", "/instances:watch", timeout=httpx.Timeout(30, read=0.5)) as reply,
    ):
        assert reply.status_code == 200
        try:
            for line in reply.iter_lines():
                seen.append(orjson.loads(line)["result"]["instance"]["namespace"])
                if time.monotonic() > deadline:
                    break
        except httpx.ReadTimeout:
            pass
    assert seen
    assert set(seen) == {OTHER_NS}


def test_denied_callers_changed_nothing(world: World) -> None:
    with world.client("system") as system:
        shown = system.get(f"/instances/{world.mine['uuid']}").json()
        metadata = system.get(f"/instances/{world.mine['uuid']}/metadata").json()
    assert shown["state"] != "deleted"
    assert shown["namespace"] == OWNER_NS
    writers = {key.split("-", 1)[1] for key in metadata}
    assert writers <= set(ALLOWED)
