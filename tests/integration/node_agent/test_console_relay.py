"""The node agent's console relay (`console_relay.py`) on a real grpc.aio
server, against a fake VNC server on loopback: a pure-transport test (the
whole path, QEMU included, is tests/e2e/test_browser_console.py's).

The fake listens at a port of the console range, sends an RFB banner, echoes
what it gets, closes when it gets `bye` (as QEMU closes a console when its
domain stops), and counts its connections."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sfmesh.v1 import instance_pb2, node_agent_service_pb2, node_agent_service_pb2_grpc, records_pb2

from services.common.instance_store import StoredInstance
from services.common.interceptors import RequestInterceptor
from services.node_agent.console_relay import ConsoleRelay
from services.node_agent.graphics_ports import GraphicsSettings

BANNER = b"RFB 003.008\n"
Request = node_agent_service_pb2.RelayConsoleRequest


class FakeVnc:
    """The console of one instance."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self.flood = 0
        self.written = 0
        self.ended = asyncio.Event()
        """Set when a connection's other side has gone."""

    async def start(self, ports: range) -> None:
        for port in random.sample(ports, 50):
            with contextlib.suppress(OSError):
                self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
                self.port = port
                return
        raise RuntimeError("no free console port")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(BANNER)
        if self.flood:
            while self.written < self.flood:
                writer.write(b"v" * 65536)
                self.written += 65536
                await writer.drain()
        while data := await reader.read(65536):
            if data == b"bye":
                break
            writer.write(data)
            await writer.drain()
        self.ended.set()
        writer.close()


class Relaying(node_agent_service_pb2_grpc.NodeAgentServiceServicer):
    def __init__(self, relay: ConsoleRelay) -> None:
        self._relay = relay

    async def RelayConsole(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        async for reply in self._relay.relay(request_iterator, context):
            yield reply


def record(uuid: str, port: int, vdi: int = instance_pb2.VDI_TYPE_VNC) -> StoredInstance:
    made = records_pb2.InstanceRecord(instance=instance_pb2.Instance(uuid=uuid))
    made.instance.video.vdi = vdi  # type: ignore[assignment]
    made.instance.vdi_port = port
    return StoredInstance(made, 1)


@pytest.fixture
async def world() -> AsyncIterator[
    tuple[node_agent_service_pb2_grpc.NodeAgentServiceStub, FakeVnc, dict[str, Any]]
]:
    settings = GraphicsSettings()
    vnc = FakeVnc()
    await vnc.start(settings.ports)
    hosted: dict[str, StoredInstance] = {
        "vnc": record("vnc", vnc.port),
        "spice": record("spice", vnc.port, instance_pb2.VDI_TYPE_SPICE),
        "outside": record("outside", 13010),
        "off": record("off", vnc.port),
    }
    powers: dict[str, Any] = {"off": instance_pb2.POWER_STATE_OFF}

    async def power(uuid: str) -> Any:
        return powers.get(uuid, instance_pb2.POWER_STATE_ON)

    relay = ConsoleRelay(lookup=hosted.get, power=power, settings=settings)
    server = grpc.aio.server(interceptors=[RequestInterceptor()])
    node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server(Relaying(relay), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield node_agent_service_pb2_grpc.NodeAgentServiceStub(channel), vnc, hosted
    await channel.close()
    await server.stop(0)
    assert vnc.server is not None
    vnc.server.close()


async def open_relay(stub: Any, uuid: str) -> Any:
    call = stub.RelayConsole()
    await call.write(Request(instance_uuid=uuid))
    await call.initial_metadata()
    return call


async def read_exactly(call: Any, size: int) -> bytes:
    out = b""
    while len(out) < size:
        reply = await call.read()
        assert reply is not grpc.aio.EOF, out
        out += reply.data
    return out


async def test_bytes_go_both_ways_and_the_console_closing_ends_the_relay(world: Any) -> None:
    stub, _, _ = world
    call = await open_relay(stub, "vnc")
    assert await read_exactly(call, len(BANNER)) == BANNER
    payload = bytes(range(256)) * 1000
    await call.write(Request(data=payload))
    assert await read_exactly(call, len(payload)) == payload
    await call.write(Request(data=b"bye"))  # the domain stops: QEMU closes its console
    assert await asyncio.wait_for(call.read(), 5) is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("uuid", "code", "reason"),
    [
        ("missing", grpc.StatusCode.NOT_FOUND, "is not on this node"),
        ("off", grpc.StatusCode.FAILED_PRECONDITION, "is not running"),
        ("spice", grpc.StatusCode.FAILED_PRECONDITION, "has no VNC console"),
        ("outside", grpc.StatusCode.FAILED_PRECONDITION, "outside"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "instance_uuid is required"),
    ],
)
async def test_refusals_connect_to_nothing(
    world: Any, uuid: str, code: grpc.StatusCode, reason: str
) -> None:
    stub, vnc, _ = world
    call = stub.RelayConsole()
    await call.write(Request(instance_uuid=uuid))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    assert refused.value.code() == code
    assert reason in (refused.value.details() or "")
    assert vnc.connections == 0


async def test_a_console_nobody_listens_at_is_not_ready(world: Any) -> None:
    stub, vnc, _ = world
    assert vnc.server is not None
    vnc.server.close()
    await vnc.server.wait_closed()
    call = stub.RelayConsole()
    await call.write(Request(instance_uuid="vnc"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call.read()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not answer" in (refused.value.details() or "")


async def test_a_reader_that_stops_holds_the_console_back(world: Any) -> None:
    """Backpressure: the agent reads the console only as fast as the stream
    takes it, so a console flooding a reader that stops is held back by a
    few buffers, and everything arrives once it reads again."""
    stub, vnc, _ = world
    vnc.flood = 32 << 20
    call = await open_relay(stub, "vnc")
    await asyncio.sleep(1.5)
    held = vnc.written
    # socket buffers and gRPC's flow-control windows: about 9 MiB here
    assert held < 16 << 20, f"{held} bytes read for a reader that reads nothing"
    received = 0
    while received < len(BANNER) + vnc.flood:
        reply = await call.read()
        assert reply is not grpc.aio.EOF
        received += len(reply.data)
    call.cancel()


async def test_the_api_going_closes_the_console(world: Any) -> None:
    stub, vnc, _ = world
    call = await open_relay(stub, "vnc")
    assert await read_exactly(call, len(BANNER)) == BANNER
    call.cancel()
    await asyncio.wait_for(vnc.ended.wait(), 5)
    assert vnc.connections == 1
