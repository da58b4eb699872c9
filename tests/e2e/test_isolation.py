"""The isolation matrix through the whole mesh, generated from the descriptors.

Every REST route (tests/e2e/isolation.py builds them as the gateway does)
runs for every kind of caller against the objects of a victim namespace of
its own: an instance, its network and interface, the namespace, its keys,
trusts and metadata. Refused callers get exactly their refusal, see nothing
of the victim's that they did not send, and change nothing (the victim is
read back as system after each of their writes). Every ACCESS_INTERNAL RPC is
refused over gRPC to users and to no token.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sfmesh.v1 import options_pb2

from devmesh.mesh import Mesh
from guests.serve import ImageServer
from services.api_gateway.openapi import openapi_path
from services.api_gateway.routes import Route
from services.api_gateway.types import MethodDescriptor
from services.common.tokens import TokenAuthority
from tests.agent_operation_records import put_agent_operation
from tests.e2e.isolation import (
    CALLERS,
    LABEL,
    RAW_BODY,
    Request,
    Served,
    Victim,
    access,
    contracts,
    expected,
    key,
    marked,
    misjudged,
    requests,
    routes,
    rule,
    schedule,
    takes_raw_body,
)
from tests.meshes import user_token_secret
from tests.node_records import put_node

RUN = uuid.uuid4().hex[:6]
VICTIM = f"iso-victim-{RUN}"
OTHER = f"iso-other-{RUN}"
TRUSTED = f"iso-trusted-{RUN}"
SECRET = f"{VICTIM}-secret"
"""The victim's metadata values."""
GRPC_SERVICES = ("api", "scheduler", "eventlog", "node_agent")
"""The mesh's gRPC endpoints (mesh.address names)."""
STREAM_READ = 2.0
"""Seconds of silence that end the reading of a stream's answer (the gateway
sends the 200 header after a second of silence)."""


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    """The victim, a header set per caller, and what the run found."""

    mesh: Mesh
    victim: Victim
    headers: dict[str, dict[str, str]]
    markers: list[str]
    """Strings of the victim's that no refused caller may be shown."""
    baseline: dict[str, Any] | None
    """The victim as system read it since the last served write (None: read
    it again before the next refused write)."""
    system: httpx.Client
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    """Cases refused, or answered without the victim, as they must be, by caller."""
    writes_checked: Counter[str] = field(default_factory=Counter)
    internal_refusals: int = 0
    """ACCESS_INTERNAL calls refused as they must be."""

    def snapshot(self) -> dict[str, Any]:
        """Everything of the victim's, read as system."""
        v = self.victim
        paths = [
            f"/instances/{v.instance['uuid']}",
            f"/instances/{v.instance['uuid']}/metadata",
            f"/instances/{v.instance['uuid']}/events",
            f"/networks/{v.network['uuid']}",
            f"/networks/{v.network['uuid']}/metadata",
            f"/networks/{v.network['uuid']}/addresses",
            f"/networks/{v.network['uuid']}/interfaces",
            f"/networks/{v.network['uuid']}/events",
            f"/interfaces/{v.interface['uuid']}",
            f"/interfaces/{v.interface['uuid']}/metadata",
            f"/auth/namespaces/{v.namespace}",
            f"/auth/namespaces/{v.namespace}/keys",
            f"/auth/namespaces/{v.namespace}/metadata",
            f"/artifacts/{v.artifact['uuid']}",
            f"/artifacts/{v.artifact['uuid']}/metadata",
            f"/artifacts/{v.artifact['uuid']}/versions",
            f"/label/{v.namespace}/{LABEL}",
            f"/blobs/{v.blob['uuid']}",
            f"/blobs/{v.blob['uuid']}/metadata",
            f"/agentoperations/{v.agent_operation['uuid']}",
            f"/nodes/{v.node}/metadata",  # its other fields move with every report
        ]
        shot: dict[str, Any] = {path: self.system.get(path).json() for path in paths}
        for listing in ("/instances", "/networks", "/artifacts"):
            params = {} if listing == "/artifacts" else {"all": True}
            found = self.system.get(listing, params=params).json()
            shot[listing] = sorted(o["uuid"] for o in found if o["namespace"] == v.namespace)
        return shot

    def settled(self) -> dict[str, Any]:
        """The snapshot once two reads a moment apart agree."""
        deadline = time.monotonic() + 20
        shot = self.snapshot()
        while True:
            time.sleep(0.3)
            again = self.snapshot()
            if again == shot or time.monotonic() > deadline:
                return again
            shot = again

    def run(self, request: Request) -> list[str]:
        """Send one case and judge it; the findings, each with its request and answer."""
        route, caller = request.route, request.caller
        outcome = expected(route, caller)
        write = route.http_method != "GET"
        if write and self.baseline is None and not isinstance(outcome, Served):
            self.baseline = self.settled()
        with httpx.Client(
            base_url=self.mesh.gateway_url, headers=self.headers[caller], timeout=30
        ) as client:
            status, text = _send(client, request)
        self.statuses.setdefault(caller, Counter())[status] += 1
        sent = request.path + json.dumps(request.body)
        wrong = misjudged(route, caller, status, _error(text))
        findings = [wrong] if wrong else []
        if not isinstance(outcome, Served):
            leaked = [m for m in self.markers if m in text and m not in sent]
            if leaked:
                findings.append(f"the answer shows the victim's {leaked}")
            if write:
                self.writes_checked[caller] += 1
                now = self.snapshot()
                changed = [k for k in now if now[k] != (self.baseline or {}).get(k)]
                if changed:
                    findings.append(f"the victim changed: {changed}")
                    self.baseline = now
            if not findings:
                self.refused[caller] += 1
        elif write:
            self.baseline = None
        return [
            f"{caller} {route.http_method} {request.path} {json.dumps(request.body)} -> "
            f"{status} {text[:400]}: {finding} ({route.method.full_name}, "
            f"{type(outcome).__name__} {outcome})"
            for finding in findings
        ]


def _send(client: httpx.Client, request: Request) -> tuple[int, str]:
    """The status and body; a stream's body is what it sent in STREAM_READ seconds."""
    method, body = request.route.http_method, request.body or None
    if takes_raw_body(request.route):
        octets = {"Content-Type": "application/octet-stream"}
        reply = client.request(method, request.path, content=RAW_BODY, headers=octets)
        return reply.status_code, reply.text
    if not request.route.server_streaming:
        reply = client.request(method, request.path, json=body)
        return reply.status_code, reply.text
    lines: list[str] = []
    timeout = httpx.Timeout(30, read=STREAM_READ)
    with (
        client.stream(method, request.path, json=body, timeout=timeout) as reply,
        contextlib.suppress(httpx.ReadTimeout),
    ):
        for line in reply.iter_lines():
            lines.append(line)
    return reply.status_code, "\n".join(lines)


def _error(text: str) -> str | None:
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer.get("error") if isinstance(answer, dict) else None


def _token(mesh: Mesh, namespace: str, key: str) -> str:
    reply = httpx.post(
        f"{mesh.gateway_url}/auth", json={"namespace": namespace, "key": key}, timeout=30
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def _ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, f"{reply.request.method} {reply.request.url}: {reply.text}"
    return reply.json()


@pytest.fixture(scope="module")
def world(
    mesh: Mesh, token: str, image_server: ImageServer, request: pytest.FixtureRequest
) -> Iterator[World]:
    system = httpx.Client(base_url=mesh.gateway_url, headers=_bearer(token), timeout=30)
    for name in (OTHER, TRUSTED):
        _ok(system.post("/auth/namespaces", json={"namespace": name, "key_name": "k", "key": "s"}))
    _ok(system.post("/auth/namespaces", json={"namespace": VICTIM}))
    ns = f"/auth/namespaces/{VICTIM}"
    _ok(system.post(f"{ns}/trust", json={"external_namespace": TRUSTED}))
    for name in marked(VICTIM, "trust"):
        _ok(system.post(f"{ns}/trust", json={"external_namespace": name}))
    for name in marked(VICTIM, "key"):
        _ok(system.post(f"{ns}/keys", json={"key_name": name, "key": "s"}))
    _ok(system.post(f"{ns}/keys", json={"key_name": "doomed", "key": "d"}))
    revoked = _token(mesh, VICTIM, "d")
    _ok(system.delete(f"{ns}/keys/doomed"))
    expired = TokenAuthority(
        internal_secret="unused",
        user_secret=user_token_secret(mesh),
        ttl_seconds=-10,
    ).issue_user(VICTIM, "doomed", "unused")
    headers = {
        "none": {},
        "expired": _bearer(expired),
        "revoked": _bearer(revoked),
        "other": _bearer(_token(mesh, OTHER, "s")),
        "trusted": _bearer(_token(mesh, TRUSTED, "s")),
        "system": _bearer(token),
    }
    octet = int(RUN, 16) % 200 + 20
    network = _ok(
        system.post(
            "/networks",
            json={"netblock": f"10.246.{octet}.0/24", "name": f"{VICTIM}-net", "namespace": VICTIM},
        )
    )
    metadata = dict.fromkeys(marked(VICTIM, "md"), SECRET)
    base = image_server.url(f"iso-missing-{RUN}.raw")  # never published: ends in error
    made = _ok(
        system.post(
            "/instances",
            json={
                "name": f"{VICTIM}-vm",
                "namespace": VICTIM,
                "cpus": 1,
                "memory": 256,
                "disk": [{"size": 1, "base": base}],
                "network": [{"network_uuid": network["uuid"]}],
                "metadata": metadata,
            },
        )
    )
    nic = made["interfaces"][0]["uuid"]
    for path in (ns, f"/networks/{network['uuid']}", f"/interfaces/{nic}"):
        for name, value in metadata.items():
            _ok(system.put(f"{path}/metadata/{name}", json={"value": value}))
    (artifact,) = [a for a in _ok(system.get("/artifacts")) if a["namespace"] == VICTIM]
    as_victim = httpx.Client(
        base_url=mesh.gateway_url, headers=_bearer(_token(mesh, VICTIM, "s")), timeout=30
    )
    blob = _uploaded_blob(as_victim, f"{VICTIM}-blob", f"the blob of {VICTIM}".encode())
    _ok(system.post(f"/label/{VICTIM}/{LABEL}", json={"blob_uuid": blob["uuid"]}))
    for path in (f"/artifacts/{artifact['uuid']}", f"/blobs/{blob['uuid']}"):
        for name, value in metadata.items():
            _ok(system.put(f"{path}/metadata/{name}", json={"value": value}))
    upload = _ok(as_victim.post("/upload"))
    _ok(as_victim.post(f"/upload/{upload['uuid']}", content=SECRET.encode(), headers=OCTETS))
    as_victim.close()
    victim = Victim(
        namespace=VICTIM,
        instance=made,
        network=network,
        node=made["node"],
        spare_node=put_node(mesh, f"{VICTIM}-spare-node"),
        disk_base=base,
        netblock=f"10.246.{octet + 1}.0/24",
        artifact=artifact,
        blob=blob,
        upload=upload,
        agent_operation=put_agent_operation(mesh, made),
    )
    interface = victim.interface
    markers = [
        VICTIM,
        made["uuid"],
        made["name"],
        network["uuid"],
        network["name"],
        interface["uuid"],
        interface["macaddr"],
        interface["ipv4"],
        artifact["uuid"],
        blob["uuid"],
        blob["sha512"],
        upload["uuid"],
        victim.agent_operation["uuid"],
        SECRET,
        *(name for what in ("key", "trust", "md") for name in marked(VICTIM, what)),
    ]
    world = World(mesh, victim, headers, markers, None, system)
    _wait_for_error(system, made["uuid"])
    _wait_for_revocation(mesh, revoked)
    try:
        yield world
    finally:
        _figures(world, request)
        _clean(system)
        system.close()


OCTETS = {"Content-Type": "application/octet-stream"}


def _uploaded_blob(client: httpx.Client, name: str, content: bytes) -> dict[str, Any]:
    """A blob of `content`, uploaded and converted into artifact `name`."""
    upload = _ok(client.post("/upload"))
    _ok(client.post(f"/upload/{upload['uuid']}", content=content, headers=OCTETS))
    artifact = _ok(client.post(f"/artifacts/upload/{name}", json={"upload_uuid": upload["uuid"]}))
    return dict(_ok(client.get(f"/blobs/{artifact['blob_uuid']}")))


def _wait_for_error(system: httpx.Client, instance: str) -> None:
    deadline = time.monotonic() + 60
    while system.get(f"/instances/{instance}").json()["state"] != "error":
        assert time.monotonic() < deadline, "the victim's instance never ended in error"
        time.sleep(0.2)


def _wait_for_revocation(mesh: Mesh, revoked: str) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{mesh.gateway_url}/instances", headers=_bearer(revoked)).status_code != 401:
        assert time.monotonic() < deadline, "the deleted key's token still works"
        time.sleep(0.1)


def _clean(system: httpx.Client) -> None:
    """Ends every instance and network of the victim's (system's last cases may
    have), and the other namespaces."""
    system.request("DELETE", "/instances", json={"confirm": True, "namespace": VICTIM})
    system.request(
        "DELETE", "/networks", json={"confirm": True, "namespace": VICTIM, "clean_wait": True}
    )
    system.request("DELETE", "/artifacts", json={"confirm": True, "namespace": VICTIM})
    for name in (OTHER, TRUSTED):
        system.delete(f"/auth/namespaces/{name}")


def _figures(world: World, request: pytest.FixtureRequest) -> None:
    """Print how many cases each caller ran, by status, past pytest's capture."""
    lines = ["", "isolation matrix: cases by caller (status: count)"]
    for caller in CALLERS:
        counts = world.statuses.get(caller, Counter())
        shown = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
        lines.append(
            f"  {caller:8} {sum(counts.values()):3} cases, {world.refused[caller]:3} kept out "
            f"as they must be, {world.writes_checked[caller]:2} of them writes ({shown})"
        )
    lines.append(f"  internal RPCs refused over gRPC: {world.internal_refusals}")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(lines))


def _case_id(case: tuple[str, Route]) -> str:
    caller, route = case
    return f"{caller}:{route.http_method} {route.template.source}"


@pytest.mark.parametrize(("caller", "route"), schedule(), ids=map(_case_id, schedule()))
def test_route(world: World, caller: str, route: Route) -> None:
    made = requests(route, caller, world.victim)
    if rule(route).last and isinstance(expected(route, caller), Served):
        made = made[:1]  # an object ends once: again, it is not found
    findings = [finding for request in made for finding in world.run(request)]
    assert not findings, "\n".join(findings)


def test_the_gateway_serves_the_routes_of_the_descriptors(rest: httpx.Client) -> None:
    document = rest.get("/openapi.json").json()
    served = {(m.upper(), path) for path, ops in document["paths"].items() for m in ops}
    # OpenAPI names a variable spanning segments (`{label_name=*/*}`) as one
    assert served == {(method, openapi_path(source)) for method, source in map(key, routes())}


# --- ACCESS_INTERNAL over gRPC ---------------------------------------------------------------


def _served_services(address: str) -> list[str]:
    """The services a gRPC endpoint names through server reflection."""
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        (answer,) = stub.ServerReflectionInfo(iter([ask]), timeout=10)
    return [s.name for s in answer.list_services_response.service]


def _internal_methods() -> list[MethodDescriptor]:
    return [
        method
        for service in contracts()
        for method in service.methods
        if access(method) == options_pb2.ACCESS_INTERNAL
    ]


def _call(channel: grpc.Channel, method: MethodDescriptor, metadata: list[tuple[str, str]]) -> None:
    """One call of `method` with an empty request, built from its descriptor alone;
    streams are read to their end."""
    message = message_factory.GetMessageClass(method.input_type)()
    path = f"/{method.containing_service.full_name}/{method.name}"
    codec: dict[str, Any] = {
        "request_serializer": type(message).SerializeToString,
        "response_deserializer": lambda data: data,
    }
    options: dict[str, Any] = {"metadata": metadata, "timeout": 10}
    if method.client_streaming:
        answers = channel.stream_stream(path, **codec)(iter([message]), **options)
    elif method.server_streaming:
        answers = channel.unary_stream(path, **codec)(message, **options)
    else:
        channel.unary_unary(path, **codec)(message, **options)
        return
    for _ in answers:
        pass


def test_internal_rpcs_refuse_users(mesh: Mesh, token: str, world: World) -> None:
    where = {
        service: mesh.address(name)
        for name in GRPC_SERVICES
        for service in _served_services(mesh.address(name))
    }
    forged = TokenAuthority(internal_secret="not-the-service-key" * 2).issue_internal("scheduler")
    callers = {
        "no token": [],
        "system's user token": [("authorization", f"Bearer {token}")],
        "a user token": list(world.headers["other"].items()),
        "an internal token not signed with service.key": [("authorization", f"Bearer {forged}")],
    }
    methods = _internal_methods()
    assert methods
    findings = []
    for method in methods:
        address = where.get(method.containing_service.full_name)
        assert address, f"no mesh endpoint serves {method.containing_service.full_name}"
        for caller, metadata in callers.items():
            with grpc.insecure_channel(address) as channel:
                try:
                    _call(channel, method, [(k.lower(), v) for k, v in metadata])
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                world.internal_refusals += 1
            else:
                findings.append(f"{method.full_name} at {address}, {caller}: {code}")
    assert not findings, "\n".join(findings)
