"""One gateway in front of three api replicas (services/common/replicas.py),
over TLS with certificates from launcher/ca.py: calls are spread over the
replicas, a replica that is stopping (its health says NOT_SERVING) or gone
takes none, and one that serves again is back in the rotation."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from grpc_health.v1 import health_pb2
from sfmesh.v1 import instance_pb2, instance_service_pb2, instance_service_pb2_grpc

from services.api_gateway.app import GatewayApp
from services.api_gateway.config import GatewayConfig
from services.api_gateway.server import GatewayServer
from services.common.server import Running, Servicer, start_server
from services.common.tokens import TokenAuthority
from services.common.transport import Transport
from tests.pki import Pki, make_pki

USER_SECRET = "shared-by-every-replica-" + "x" * 24
REPLICAS = 3
SPREAD = 30


class NamedAfterReplica(instance_service_pb2_grpc.InstanceServiceServicer):
    """Answers a list with one instance named after the replica."""

    def __init__(self, name: str) -> None:
        self._name = name

    async def ListInstances(self, request: Any, context: Any) -> Any:
        instance = instance_pb2.Instance(uuid="u1", name=self._name)
        return instance_service_pb2.ListInstancesResponse(instances=[instance])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki-replicas"), ["api", "gateway"])


def authority() -> TokenAuthority:
    return TokenAuthority(internal_secret=None, user_secret=USER_SECRET)


async def replica(name: str, transport: Transport, port: int = 0) -> Running:
    return await start_server(
        address=f"127.0.0.1:{port}",
        servicers=[
            Servicer(
                "sfmesh.v1.InstanceService",
                NamedAfterReplica(name),
                instance_service_pb2_grpc.add_InstanceServiceServicer_to_server,
            )
        ],
        authority=authority(),
        transport=transport,
        clients_prove=False,
    )


@pytest.fixture
async def replicas(pki: Pki) -> AsyncIterator[dict[str, Running]]:
    started = {f"api{n}": await replica(f"api{n}", pki.transport("api")) for n in range(REPLICAS)}
    yield started
    for running in started.values():
        await running.server.stop(0)


@pytest.fixture
async def rest(pki: Pki, replicas: dict[str, Running]) -> AsyncIterator[httpx.AsyncClient]:
    """A REST client of the gateway in front of every replica."""
    upstream = ",".join(f"127.0.0.1:{r.port}" for r in replicas.values())
    config = GatewayConfig(api_address=upstream, port=0, transport=pki.transport("gateway"))
    server = GatewayServer(config, GatewayApp(config))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    token = authority().issue_user("system", "admin", "")
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{port}",
        verify=ssl.create_default_context(cafile=pki.ca),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as client:
        yield client
    server.should_exit = True
    server.gateway.request_stop()
    await asyncio.wait_for(task, 15)


async def answered_by(rest: httpx.AsyncClient, calls: int = SPREAD) -> Counter[str]:
    """Which replica answered each of `calls` lists (or the failure status)."""
    seen: Counter[str] = Counter()
    for _ in range(calls):
        reply = await rest.get("/instances")
        seen[reply.json()[0]["name"] if reply.status_code == 200 else str(reply.status_code)] += 1
    return seen


async def settle(rest: httpx.AsyncClient, wanted: set[str], within: float = 5.0) -> Counter[str]:
    """Lists until only `wanted` replicas answer, at most `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        seen = await answered_by(rest)
        if set(seen) == wanted or asyncio.get_running_loop().time() > deadline:
            return seen
        await asyncio.sleep(0.1)


async def test_calls_are_spread_over_every_replica(
    rest: httpx.AsyncClient, replicas: dict[str, Running]
) -> None:
    seen = await settle(rest, set(replicas))
    assert set(seen) == set(replicas), seen


async def test_a_stopping_replica_takes_no_call_and_returns_when_serving(
    rest: httpx.AsyncClient, replicas: dict[str, Running]
) -> None:
    await settle(rest, set(replicas))
    await replicas["api1"].health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    seen = await settle(rest, {"api0", "api2"})
    assert set(seen) == {"api0", "api2"}, seen  # not one call to api1, none failed
    await replicas["api1"].health.set("", health_pb2.HealthCheckResponse.SERVING)
    assert set(await settle(rest, set(replicas))) == set(replicas)


async def test_a_dead_replica_takes_no_call(
    rest: httpx.AsyncClient, replicas: dict[str, Running]
) -> None:
    await settle(rest, set(replicas))
    await replicas["api2"].server.stop(0)
    seen = await answered_by(rest)
    failed = sum(n for name, n in seen.items() if not name.startswith("api"))
    assert failed <= 1, seen  # at most a call that was already on its way
    assert set(await answered_by(rest)) == {"api0", "api1"}
