"""WebSocket routes through the gateway's own HTTP server, over real sockets,
against a fake `ConsoleStream` on a real grpc.aio server with reflection.

The fake decides by the first message's ticket: `echo` accepts and sends
back what it gets; `refuse` refuses before accepting (as a bad ticket
is); `expire` accepts, echoes once, then fails 401 (a ticket expiring);
`end` accepts, sends `bye` and ends (an instance that stopped); `flood`
accepts and sends 64 MiB as fast as the gateway takes them; `hold`
accepts and waits for the client to leave (recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection
from sfmesh.v1 import instance_service_pb2, instance_service_pb2_grpc

from devmesh.ws_client import Refused, WebSocket, connect
from services.api_gateway import ws_exchange
from services.api_gateway.app import GatewayApp
from services.api_gateway.config import GatewayConfig
from services.api_gateway.server import GatewayServer
from services.api_gateway.ws_exchange import MAX_MESSAGE
from services.common import errors
from tests.integration.api_gateway.conftest import free_port

SERVICE = instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"].full_name
FLOOD = 64 << 20
CHUNK = 64 * 1024
Response = instance_service_pb2.ConsoleStreamResponse


class FakeConsoles(instance_service_pb2_grpc.InstanceServiceServicer):
    """ConsoleStream as the module's docstring says."""

    def __init__(self) -> None:
        self.first: list[instance_service_pb2.ConsoleStreamRequest] = []
        self.left = asyncio.Event()
        self.flooded = 0

    async def ConsoleStream(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        first = await anext(request_iterator)
        self.first.append(first)
        if first.ticket == "refuse":
            await context.abort_with_status(errors.to_status(errors.NotFound("instance not found")))
        await context.send_initial_metadata(())
        if first.ticket == "end":
            yield Response(data=b"bye")
            return
        if first.ticket == "flood":
            for _ in range(FLOOD // CHUNK):
                self.flooded += CHUNK
                yield Response(data=b"f" * CHUNK)
            return
        if first.ticket == "hold":
            try:
                await asyncio.Event().wait()
            finally:
                self.left.set()
        async for message in request_iterator:
            yield Response(data=message.data)
            if first.ticket == "expire":
                await context.abort_with_status(
                    errors.to_status(
                        errors.Unauthenticated("console ticket expired", reason="TICKET_EXPIRED")
                    )
                )


@pytest.fixture(scope="module")
async def consoles() -> AsyncIterator[tuple[str, FakeConsoles]]:
    server = grpc.aio.server()
    fake = FakeConsoles()
    instance_service_pb2_grpc.add_InstanceServiceServicer_to_server(fake, server)
    reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", fake
    await server.stop(0)


@contextlib.asynccontextmanager
async def gateway_server(upstream: str) -> AsyncIterator[tuple[str, GatewayServer]]:
    config = GatewayConfig(api_address=upstream, port=free_port())
    server = GatewayServer(config, GatewayApp(config))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{config.port}", server
    finally:
        server.should_exit = True
        server.gateway.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


@pytest.fixture(scope="module")
async def gateway(consoles: tuple[str, FakeConsoles]) -> AsyncIterator[str]:
    async with gateway_server(consoles[0]) as (address, _):
        yield address


async def opened(gateway: str, ticket: str, **kwargs: Any) -> WebSocket:
    return await connect(f"ws://{gateway}/console/ws?instance=i-1&ticket={ticket}", **kwargs)


async def test_bytes_go_both_ways_as_binary_frames(
    gateway: str, consoles: tuple[str, FakeConsoles]
) -> None:
    socket = await opened(gateway, "echo")
    assert consoles[1].first[-1].instance == "i-1"  # the query filled the first message
    for size in (1, 1000, 300_000):
        payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        await socket.send(payload)
        assert await socket.recv_bytes(len(payload)) == payload
    await socket.close()
    assert socket.close_code == 1000


async def test_a_refusal_is_an_http_answer_and_no_socket(gateway: str) -> None:
    with pytest.raises(Refused) as refused:
        await opened(gateway, "refuse")
    assert refused.value.status == 404
    assert b'"instance not found"' in refused.value.body


async def test_a_failure_after_opening_closes_with_4000_plus_its_status(gateway: str) -> None:
    socket = await opened(gateway, "expire")
    await socket.send(b"hello")
    assert await socket.recv_bytes(5) == b"hello"
    assert await socket.recv() is None
    assert (socket.close_code, socket.close_reason) == (4401, "console ticket expired")


async def test_the_stream_s_end_closes_normally(gateway: str) -> None:
    socket = await opened(gateway, "end")
    assert await socket.recv_bytes(3) == b"bye"
    assert await socket.recv() is None
    assert socket.close_code == 1000


async def test_the_client_leaving_cancels_the_stream(
    gateway: str, consoles: tuple[str, FakeConsoles]
) -> None:
    consoles[1].left.clear()
    socket = await opened(gateway, "hold")
    socket.abort()
    await asyncio.wait_for(consoles[1].left.wait(), 5)


async def test_a_client_that_does_not_read_holds_back_the_stream(
    gateway: str, consoles: tuple[str, FakeConsoles]
) -> None:
    """Backpressure: the gateway takes from the upstream only what the
    client's socket takes, so a client that stops reading stops the flood
    after a few buffers, and gets every byte once it reads again."""
    consoles[1].flooded = 0
    socket = await opened(gateway, "flood")
    await asyncio.sleep(1.5)
    held = consoles[1].flooded
    # socket buffers and gRPC's flow-control windows: about 10 MiB here
    assert held < 24 << 20, f"{held} bytes sent to a client reading nothing"
    received = 0
    while (piece := await socket.recv()) is not None:
        assert isinstance(piece, bytes)
        received += len(piece)
    assert received == FLOOD
    assert socket.close_code == 1000


async def test_text_frames_are_refused(gateway: str) -> None:
    socket = await opened(gateway, "echo")
    await socket.send_text("hello")
    assert await socket.recv() is None
    assert socket.close_code == 1003


async def test_an_oversized_message_closes_the_socket(gateway: str) -> None:
    socket = await opened(gateway, "echo")
    await socket.send(b"x" * (MAX_MESSAGE + 1))
    while await socket.recv() is not None:
        pass
    assert socket.close_code == 1009


async def test_binary_is_chosen_when_offered(gateway: str) -> None:
    socket = await opened(gateway, "echo", subprotocols=("binary",))
    await socket.send(b"ok")
    assert await socket.recv_bytes(2) == b"ok"
    await socket.close()


async def test_plain_requests_and_bad_handshakes(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{gateway}") as client:
        plain = await client.get("/console/ws", params={"ticket": "echo"})
        assert plain.status_code == 426
        assert plain.headers["upgrade"] == "websocket"
        bad = await client.get(
            "/console/ws",
            headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "8"},
        )
        assert bad.status_code == 400
        assert await client.get("/healthz") is not None  # the server still serves
    with pytest.raises(Refused) as not_socket:
        await connect(f"ws://{gateway}/instances")
    assert not_socket.value.status == 400
    with pytest.raises(Refused) as unknown:
        await connect(f"ws://{gateway}/nothing/here")
    assert unknown.value.status == 404


async def test_a_stopping_gateway_closes_its_sockets_as_going_away(
    consoles: tuple[str, FakeConsoles],
) -> None:
    async with gateway_server(consoles[0]) as (address, server):
        socket = await opened(address, "hold")
        server.should_exit = True
        server.gateway.request_stop()
        assert await asyncio.wait_for(socket.recv(), 5) is None
        assert socket.close_code == 1001


async def drained(socket: WebSocket) -> int:
    """Bytes received until the socket ends, however it ends."""
    received = 0
    with contextlib.suppress(ConnectionError):
        while (piece := await socket.recv()) is not None:
            received += len(piece)
    return received


async def test_a_client_that_never_reads_is_cut_once_writes_stall(
    gateway: str, consoles: tuple[str, FakeConsoles], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_exchange, "WRITE_STALL", 1.0)
    consoles[1].flooded = 0
    socket = await opened(gateway, "flood")
    await asyncio.sleep(3)
    held = consoles[1].flooded
    assert await asyncio.wait_for(drained(socket), 10) < FLOOD
    assert consoles[1].flooded == held  # the stream ended with the socket


async def test_pings_do_not_keep_a_client_that_does_not_read(
    gateway: str, consoles: tuple[str, FakeConsoles], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pongs are not queued behind a full buffer and pings count for
    nothing: the stall cuts the client as if it were silent."""
    monkeypatch.setattr(ws_exchange, "WRITE_STALL", 1.0)
    socket = await opened(gateway, "flood")
    for _ in range(60):
        socket.ping(b"p" * 125)
        await asyncio.sleep(0.05)
    assert await asyncio.wait_for(drained(socket), 10) < FLOOD


async def test_frames_before_the_101_are_refused_unanswered(gateway: str) -> None:
    host, port = gateway.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        "GET /console/ws?instance=i-1&ticket=echo HTTP/1.1\r\nHost: gw\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    ping = b"\x89\x80\x00\x00\x00\x00"  # a masked, empty Ping
    writer.write(head.encode() + ping * 4)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
