"""The gateway with TLS files (services/api_gateway/https.py, server.py):
HTTPS to REST clients, and a channel to an api serving TLS, both with
certificates from launcher/ca.py. The upstream is a fake InstanceService
served as the api serves: `start_server`, no client certificate asked."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sfmesh.v1 import instance_pb2, instance_service_pb2, instance_service_pb2_grpc

from services.api_gateway.app import GatewayApp
from services.api_gateway.config import GatewayConfig
from services.api_gateway.server import GatewayServer
from services.common.interceptors import caller
from services.common.main import service_authority
from services.common.secrets import load_or_create_secret
from services.common.server import Servicer, start_server
from services.common.tokens import TokenAuthority
from tests.pki import Pki, make_pki


class NamedAfterCaller(instance_service_pb2_grpc.InstanceServiceServicer):
    async def ListInstances(self, request: Any, context: Any) -> Any:
        instance = instance_pb2.Instance(uuid="u1", name=caller().namespace)
        return instance_service_pb2.ListInstancesResponse(instances=[instance])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ["api", "gateway"])


@pytest.fixture
async def api(pki: Pki, tmp_path: Path) -> AsyncIterator[tuple[str, TokenAuthority]]:
    """An api-like upstream on TLS; yields its address and token authority."""
    transport = pki.transport("api")
    authority = service_authority(
        tmp_path, transport, user_secret=load_or_create_secret(tmp_path / "jwt.secret")
    )
    running = await start_server(
        address="127.0.0.1:0",
        servicers=[
            Servicer(
                "sfmesh.v1.InstanceService",
                NamedAfterCaller(),
                instance_service_pb2_grpc.add_InstanceServiceServicer_to_server,
            )
        ],
        authority=authority,
        transport=transport,
        clients_prove=False,
    )
    yield f"127.0.0.1:{running.port}", authority
    await running.server.stop(0)


@pytest.fixture
async def gateway(pki: Pki, api: tuple[str, TokenAuthority]) -> AsyncIterator[int]:
    """The gateway with its TLS files in front of `api`; yields its port."""
    config = GatewayConfig(api_address=api[0], port=0, transport=pki.transport("gateway"))
    server = GatewayServer(config, GatewayApp(config))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.02)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    server.gateway.request_stop()
    await asyncio.wait_for(task, 15)


async def test_https_answers_a_client_trusting_the_mesh_ca(
    pki: Pki, api: tuple[str, TokenAuthority], gateway: int
) -> None:
    token = api[1].issue_user("alice", "k", "")
    headers = {"Authorization": f"Bearer {token}"}
    verify = ssl.create_default_context(cafile=pki.ca)
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{gateway}", verify=verify) as client:
        for _ in range(3):  # one connection, kept alive
            reply = await client.get("/instances", headers=headers)
            assert reply.status_code == 200
            assert [i["name"] for i in reply.json()] == ["alice"]
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/instances")).status_code == 401


async def test_a_client_not_trusting_the_ca_refuses_the_gateway(gateway: int) -> None:
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{gateway}") as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get("/healthz")


async def test_plain_http_to_the_https_port_gets_no_answer(gateway: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway}") as client:
        with pytest.raises(httpx.TransportError):
            await client.get("/healthz")


async def test_the_handshake_offers_http_1_1_and_modern_tls(pki: Pki, gateway: int) -> None:
    context = ssl.create_default_context(cafile=pki.ca)
    context.set_alpn_protocols(["h2", "http/1.1"])
    _, writer = await asyncio.open_connection("127.0.0.1", gateway, ssl=context)
    try:
        tls = writer.get_extra_info("ssl_object")
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        writer.close()
