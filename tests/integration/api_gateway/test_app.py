"""The gateway in front of a real grpc.aio server with reflection, over real HTTP.

The upstream is a small fake InstanceService that lives only in this file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
import httpx
import orjson
import pytest
from google.protobuf import any_pb2, duration_pb2, empty_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from sfmesh.v1 import instance_pb2, instance_service_pb2, instance_service_pb2_grpc

from services.api_gateway.upstream import CoreCalls

SERVICE = instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"].full_name


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class FakeInstances(instance_service_pb2_grpc.InstanceServiceServicer):
    """Answers from fixed data; remembers the metadata it saw."""

    def __init__(self) -> None:
        self.seen_metadata: dict[str, str] = {}
        self.listed_name = "one"
        self.slow_started = asyncio.Event()
        self.slow_cancelled = asyncio.Event()

    async def ListInstances(self, request: Any, context: Any) -> Any:
        self.seen_metadata = dict(context.invocation_metadata())
        return instance_service_pb2.ListInstancesResponse(
            instances=[
                instance_pb2.Instance(
                    uuid="u1",
                    name=self.listed_name,
                    state=instance_pb2.INSTANCE_STATE_CREATED,
                    metadata={"n": 10},
                ),
                instance_pb2.Instance(uuid="u2", name="two", requested_placement="node1"),
            ]
        )

    async def GetInstance(self, request: Any, context: Any) -> Any:
        if request.ref == "full":
            info = error_details_pb2.ErrorInfo(
                reason="NO_CAPACITY", domain="sfmesh", metadata={"http_status": "507"}
            )
            retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=4))
            details = [_packed(info), _packed(retry)]
            status = status_pb2.Status(
                code=code_pb2.RESOURCE_EXHAUSTED, message="no capacity", details=details
            )
        else:
            info = error_details_pb2.ErrorInfo(
                reason="NOT_FOUND", domain="sfmesh", metadata={"http_status": "404"}
            )
            status = status_pb2.Status(
                code=code_pb2.NOT_FOUND, message="instance not found", details=[_packed(info)]
            )
        await context.abort_with_status(rpc_status.to_status(status))

    async def CreateInstance(self, request: Any, context: Any) -> Any:
        return instance_pb2.Instance(
            uuid="new",
            name=request.name,
            cpus=request.cpus,
            memory=request.memory,
            metadata=request.metadata,
        )

    async def RebootSoft(self, request: Any, context: Any) -> Any:
        """Never answers in time; records being cancelled."""
        self.slow_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.slow_cancelled.set()
            raise
        return empty_pb2.Empty()

    async def PowerOn(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")

    async def PowerOff(self, request: Any, context: Any) -> Any:
        """As a replica whose stop cut the call short."""
        await context.abort(grpc.StatusCode.CANCELLED, "server shutting down")

    async def WatchInstances(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for name in ("one", "two"):
            yield instance_service_pb2.WatchInstancesResponse(
                change=instance_service_pb2.CHANGE_TYPE_EXISTING,
                instance=instance_pb2.Instance(uuid=name, name=name),
            )
        await context.abort(grpc.StatusCode.UNAVAILABLE, "watch ended")


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[tuple[str, FakeInstances]]:
    server = grpc.aio.server()
    fake = FakeInstances()
    instance_service_pb2_grpc.add_InstanceServiceServicer_to_server(fake, server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", fake
    await server.stop(0)


@pytest.fixture(scope="module")
async def gateway(
    upstream: tuple[str, FakeInstances],
    gateway_runner: Callable[..., AbstractAsyncContextManager[str]],
) -> AsyncIterator[str]:
    async with gateway_runner(upstream[0], stream_start_wait=0.2) as url:
        yield url


async def test_a_repeated_get_answers_what_the_upstream_answers_now(
    gateway: str, upstream: tuple[str, FakeInstances]
) -> None:
    """Requests and rendered replies are remembered; neither may hide a change."""
    fake = upstream[1]
    async with httpx.AsyncClient(base_url=gateway) as client:
        before = await client.get("/instances")
        fake.listed_name = "renamed"
        try:
            after = await client.get("/instances")
        finally:
            fake.listed_name = "one"
        again = await client.get("/instances")
    assert before.json()[0]["name"] == "one"
    assert after.json()[0]["name"] == "renamed"
    assert again.json() == before.json()


async def test_a_remembered_request_is_not_used_for_one_with_a_body(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        bare = await client.post("/instances")
        named = await client.post("/instances", json={"name": "vm"})
        bare_again = await client.post("/instances")
        bad = await client.get("/instances", params={"nope": "1"})
        bad_again = await client.get("/instances", params={"nope": "1"})
    assert bare.json()["name"] == bare_again.json()["name"] == ""
    assert named.json()["name"] == "vm"
    assert bad.status_code == bad_again.status_code == 400


async def test_a_slow_call_ends_at_its_deadline(
    gateway: str, upstream: tuple[str, FakeInstances]
) -> None:
    headers = {"Grpc-Timeout": "200m"}
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post("/instances/slow/rebootsoft", headers=headers)
    assert response.status_code == 504
    assert response.json()["code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


async def test_a_cancelled_request_cancels_its_upstream_call(
    upstream: tuple[str, FakeInstances],
) -> None:
    """A request task cancelled inside the gateway (as at shutdown) cancels the core call."""
    address, fake = upstream
    fake.slow_started.clear()
    fake.slow_cancelled.clear()
    async with grpc.aio.insecure_channel(address) as channel:
        calls = CoreCalls(channel, None)
        request = instance_service_pb2.RebootSoftRequest(ref="slow").SerializeToString()
        path = f"/{SERVICE}/RebootSoft"

        async def never_gone() -> dict[str, Any]:
            await asyncio.sleep(60)
            return {"type": "http.disconnect"}

        task = asyncio.ensure_future(calls.unary(path, request, (), 30, never_gone))
        await asyncio.wait_for(fake.slow_started.wait(), 5)
        task.cancel()
        await asyncio.wait_for(fake.slow_cancelled.wait(), 5)
        assert task.cancelled()


async def test_list_answers_a_bare_list(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/instances")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert [i["uuid"] for i in body] == ["u1", "u2"]
    assert body[0]["state"] == "created"
    assert body[0]["metadata"] == {"n": 10}
    assert body[0]["ssh_key"] is None
    assert "requested_placement" not in body[0]
    assert body[1]["requested_placement"] == "node1"


async def test_request_id_and_authorization_are_forwarded(
    gateway: str, upstream: tuple[str, FakeInstances]
) -> None:
    headers = {"Authorization": "Bearer tok", "X-Request-ID": "req-1"}
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.request("GET", "/instances", headers=headers, json={"all": True})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-1"
    assert upstream[1].seen_metadata["authorization"] == "Bearer tok"
    assert upstream[1].seen_metadata["x-request-id"] == "req-1"


async def test_not_found_uses_error_info_and_shape(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/instances/nope")
    assert response.status_code == 404
    assert response.headers["x-request-id"]
    body = response.json()
    assert body["error"] == body["message"] == "instance not found"
    assert body["status"] == 404
    assert body["code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert body["details"][0]["@type"].endswith("google.rpc.ErrorInfo")
    assert body["details"][0]["reason"] == "NOT_FOUND"


async def test_error_info_status_wins_and_retry_after(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/instances/full")
    assert response.status_code == 507
    assert response.headers["retry-after"] == "4"


async def test_unauthenticated_adds_www_authenticate(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post("/instances/x/poweron")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_call_the_upstream_cancelled_is_an_outage(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post("/instances/x/poweroff")
    assert (response.status_code, response.headers["retry-after"]) == (503, "1")
    assert response.json()["error"] == "the api stopped before answering: server shutting down"


async def test_create_echoes_and_validates(gateway: str) -> None:
    body = {"name": "vm", "cpus": "2", "memory": 1024, "metadata": {"a": 1}, "ssh_key": None}
    async with httpx.AsyncClient(base_url=gateway) as client:
        good = await client.post("/instances", json=body)
        bad = await client.post("/instances", json={"name": "vm", "sshKey": "k"})
        junk = await client.post("/instances", content=b"[1, 2]")
    assert good.status_code == 200
    assert good.json()["cpus"] == 2
    assert good.json()["metadata"] == {"a": 1}
    assert bad.status_code == 400
    assert "sshKey" in bad.json()["error"]
    assert junk.status_code == 400


async def test_non_ascii_digits_are_a_400_without_a_token(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/instances/x/events", params={"event_type": "³"})
    assert response.status_code == 400
    assert 'field "event_type"' in response.json()["error"]


async def test_unknown_route_and_wrong_method(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        missing = await client.get("/nothing/here")
        wrong = await client.put("/instances")
    assert missing.status_code == 404
    assert missing.json()["status"] == 404
    assert missing.headers["x-request-id"]
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "DELETE, GET, POST"


async def test_body_too_large(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post("/instances", content=b"{" + b" " * (2 << 20) + b"}")
    assert response.status_code == 413


async def test_root_lists_capabilities(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/")
        head = await client.head("/")
        healthz = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>sfmesh REST API</title>" in response.text
    assert "get-instance-namespace" in response.text
    assert response.headers["x-request-id"]
    assert head.status_code == 200
    assert healthz.json() == {"status": "ok"}


async def test_watch_streams_ndjson(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/instances:watch")
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert response.status_code == 200
    assert [line["result"]["instance"]["name"] for line in lines[:2]] == ["one", "two"]
    assert lines[0]["result"]["change"] == "existing"
    assert lines[2]["error"]["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert lines[2]["error"]["status"] == 503
    assert len(lines) == 3


async def test_watch_streams_sse(gateway: str) -> None:
    headers = {"Accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/instances:watch", headers=headers)
    assert response.headers["content-type"] == "text/event-stream"
    events = [e for e in response.text.split("\n\n") if e]
    assert events[0].startswith("event: result\ndata: {")
    assert orjson.loads(events[1].split("data: ", 1)[1])["instance"]["name"] == "two"
    assert events[2].startswith("event: error\ndata: ")


async def test_stream_error_before_start_is_plain_error(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/instances/x:watch")
    assert response.status_code == 501
    assert response.json()["status"] == 501


async def test_client_disconnect_cancels_the_upstream_call(
    gateway: str, upstream: tuple[str, FakeInstances]
) -> None:
    fake = upstream[1]
    fake.slow_started.clear()
    fake.slow_cancelled.clear()
    host, port = gateway.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /instances/slow/rebootsoft HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    await writer.drain()
    await asyncio.wait_for(fake.slow_started.wait(), 5)
    writer.close()
    await asyncio.wait_for(fake.slow_cancelled.wait(), 5)
