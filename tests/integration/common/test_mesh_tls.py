"""TLS inside the mesh (services/common/transport.py, server.py,
interceptors.py): real grpc.aio servers on loopback built by `start_server`,
real certificates from launcher/ca.py. An internal port answers only callers
presenting a certificate of the mesh CA, and the caller is who that
certificate names; the api's port asks no certificate and serves users by
token, but nothing internal; plaintext mode still takes the internal token.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sfmesh.v1 import (
    node_agent_service_pb2,
    node_agent_service_pb2_grpc,
    node_service_pb2,
    node_service_pb2_grpc,
)

from services.common.interceptors import caller
from services.common.main import service_authority
from services.common.secrets import load_or_create_secret
from services.common.server import Running, Servicer, start_server
from services.common.tokens import InternalCredentials, Metadata, TokenAuthority
from services.common.transport import Transport
from tests.pki import HOST, Pki, make_pki

NODE_AGENT = "sfmesh.v1.NodeAgentService"
NODE = "sfmesh.v1.NodeService"
ROLES = ["api", "scheduler", "node_agent", "gateway"]


class ConsoleOfCallers(node_agent_service_pb2_grpc.NodeAgentServiceServicer):
    """ReadConsole (an internal RPC) answers who called."""

    async def ReadConsole(
        self, request: node_agent_service_pb2.ReadConsoleRequest, context: Any
    ) -> node_agent_service_pb2.ReadConsoleResponse:
        who = caller()
        return node_agent_service_pb2.ReadConsoleResponse(
            data=f"{who.namespace}/{who.key_name}@{who.host}/{who.internal}".encode()
        )


class NodesOfCallers(node_service_pb2_grpc.NodeServiceServicer):
    """ListNodes (a user RPC) answers one node named after the caller."""

    async def ListNodes(
        self, request: node_service_pb2.ListNodesRequest, context: Any
    ) -> node_service_pb2.ListNodesResponse:
        who = caller()
        node = node_service_pb2.Node(name=f"{who.namespace}/{who.key_name}")
        return node_service_pb2.ListNodesResponse(nodes=[node])


SERVICERS = [
    Servicer(
        NODE_AGENT,
        ConsoleOfCallers(),
        node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server,
    ),
    Servicer(NODE, NodesOfCallers(), node_service_pb2_grpc.add_NodeServiceServicer_to_server),
]


@dataclass(frozen=True)
class Port:
    """A started server and the address clients dial."""

    running: Running
    authority: TokenAuthority

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ROLES)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates for the same roles and host from another CA."""
    return make_pki(tmp_path_factory.mktemp("other-pki"), ROLES, name="another CA")


Starter = Callable[..., Any]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Starter]:
    """Starts a server like a service's, on a free loopback port."""
    started: list[Running] = []

    async def starting(transport: Transport, *, clients_prove: bool = True) -> Port:
        state = tmp_path / f"state{len(started)}"
        state.mkdir()
        authority = service_authority(
            state, transport, user_secret=load_or_create_secret(state / "jwt.secret")
        )
        running = await start_server(
            address="127.0.0.1:0",
            servicers=SERVICERS,
            authority=authority,
            transport=transport,
            clients_prove=clients_prove,
        )
        started.append(running)
        return Port(running, authority)

    yield starting
    for running in started:
        await running.server.stop(0)


def user_metadata(port: Port) -> Metadata:
    """A valid user token of the server's own JWT secret."""
    return (("authorization", f"Bearer {port.authority.issue_user('alice', 'k', '')}"),)


async def read_console(channel: grpc.aio.Channel, metadata: Metadata = ()) -> str:
    stub = node_agent_service_pb2_grpc.NodeAgentServiceStub(channel)
    reply = await stub.ReadConsole(
        node_agent_service_pb2.ReadConsoleRequest(instance_uuid="u"), metadata=metadata, timeout=5
    )
    return reply.data.decode()


async def refusal(channel: grpc.aio.Channel, **options: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read_console(channel, **options)
    return caught.value


async def test_an_internal_caller_is_the_identity_its_certificate_names(
    pki: Pki, start: Starter, tmp_path: Path
) -> None:
    port = await start(pki.transport("node_agent"))
    async with pki.transport("scheduler").channel(port.address) as channel:
        assert await read_console(channel) == f"system/scheduler@{HOST}/True"
        # a user's token beside the certificate changes nothing
        assert await read_console(channel, user_metadata(port)) == f"system/scheduler@{HOST}/True"
    # with TLS the service key is neither read nor made
    assert os.listdir(tmp_path / "state0") == ["jwt.secret"]


async def test_without_a_client_certificate_nothing_answers(pki: Pki, start: Starter) -> None:
    port = await start(pki.transport("node_agent"))
    anonymous = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(port.address, anonymous) as channel:
        assert (await refusal(channel, metadata=user_metadata(port))).code() == (
            grpc.StatusCode.UNAVAILABLE
        )
        health = health_pb2_grpc.HealthStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_of_another_ca_is_refused(
    pki: Pki, stranger: Pki, start: Starter
) -> None:
    port = await start(pki.transport("node_agent"))
    async with pki.presenting(stranger, "scheduler").channel(port.address) as channel:
        assert (await refusal(channel)).code() == grpc.StatusCode.UNAVAILABLE


async def test_a_client_of_another_ca_does_not_trust_the_server(
    pki: Pki, stranger: Pki, start: Starter
) -> None:
    port = await start(pki.transport("node_agent"))
    async with stranger.transport("scheduler").channel(port.address) as channel:
        assert (await refusal(channel)).code() == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_to_a_tls_port_is_refused(pki: Pki, start: Starter) -> None:
    port = await start(pki.transport("node_agent"))
    async with Transport().channel(port.address) as channel:
        assert (await refusal(channel)).code() == grpc.StatusCode.UNAVAILABLE


async def test_the_api_port_serves_users_without_certificates_but_nothing_internal(
    pki: Pki, start: Starter
) -> None:
    port = await start(pki.transport("api"), clients_prove=False)
    anonymous = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(port.address, anonymous) as channel:
        nodes = node_service_pb2_grpc.NodeServiceStub(channel)
        reply = await nodes.ListNodes(
            node_service_pb2.ListNodesRequest(), metadata=user_metadata(port), timeout=5
        )
        assert [node.name for node in reply.nodes] == ["alice/k"]
        # A user's valid token does not make an internal caller.
        refused = await refusal(channel, metadata=user_metadata(port))
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "client certificate" in (refused.details() or "")
    # Nor does a mesh certificate where no client certificate is asked.
    async with pki.transport("scheduler").channel(port.address) as channel:
        refused = await refusal(channel, metadata=user_metadata(port))
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_plaintext_mode_takes_the_internal_token_as_before(start: Starter) -> None:
    port = await start(Transport())
    credentials = InternalCredentials(port.authority, "scheduler")
    async with Transport().channel(port.address) as channel:
        assert await read_console(channel, credentials.metadata()) == "system/scheduler@/True"
        refused = await refusal(channel, metadata=user_metadata(port))
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        assert (await refusal(channel)).code() == grpc.StatusCode.UNAUTHENTICATED
