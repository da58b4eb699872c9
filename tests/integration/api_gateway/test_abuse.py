"""The gateway's HTTP server under abuse, over real sockets.

The real gateway app runs under `GatewayServer` in front of an upstream that
serves only reflection: `GET /` is answered by the gateway alone, and
`POST /instances` reads its body before the upstream says UNIMPLEMENTED. Each
attack must be bounded by a timeout or a limit, logged as a warning naming the
peer and the reason, and must not stall other clients: a normal client's
`GET /`, on a fresh connection, keeps answering within `PROBE_BOUND` seconds
while it runs. The server's timeouts are a second here instead of 10 and 30.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_reflection.v1alpha import reflection
from sfmesh.v1 import instance_service_pb2, instance_service_pb2_grpc

from services.api_gateway import http_server
from services.api_gateway.app import GatewayApp
from services.api_gateway.config import GatewayConfig
from services.api_gateway.server import GatewayServer

TIMEOUT = 1.0
"""The server's head and body timeouts in these tests."""
CLOSED_WITHIN = TIMEOUT + 5
"""Seconds by which a connection the server must end is seen closed: the
timeout plus slack for a loaded machine, where client and server share this
process's one loop. A server that never ends it misses it by far."""
MAX_CONNECTIONS = 300
MAX_BODY = 64 * 1024
PROBE_BOUND = 1.0
"""Seconds a normal client's `GET /` may take during an attack (milliseconds when idle)."""
SERVICE = instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"].full_name

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[str]:
    """An InstanceService that answers UNIMPLEMENTED to everything, with reflection."""
    server = grpc.aio.server()
    instance_service_pb2_grpc.add_InstanceServiceServicer_to_server(
        instance_service_pb2_grpc.InstanceServiceServicer(), server
    )
    reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture
async def port(upstream: str) -> AsyncIterator[int]:
    """The port of a fresh gateway with short timeouts and small caps."""
    config = GatewayConfig(
        api_address=upstream,
        port=0,
        head_timeout=TIMEOUT,
        body_timeout=TIMEOUT,
        max_connections=MAX_CONNECTIONS,
        max_body=MAX_BODY,
    )
    gateway = GatewayServer(config, GatewayApp(config))
    task = asyncio.ensure_future(gateway.serve())
    while not gateway.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.01)
    yield int(gateway.servers[0].sockets[0].getsockname()[1])
    gateway.should_exit = True
    await asyncio.wait_for(task, 15)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length body."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = raw.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    body = await reader.readexactly(int(headers["content-length"]))
    return int(lines[0].split()[1]), headers, body


async def get(port: int, path: str) -> int:
    """`GET path` on a fresh connection; its status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, _, _ = await read_response(reader)
        return status
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def normal_client(port: int) -> AsyncIterator[None]:
    """Fails unless `GET /` on a fresh connection answers 200 within
    `PROBE_BOUND` seconds, again and again while the block runs (at least once)."""
    answered = 0
    stopping = False

    async def probe() -> None:
        nonlocal answered
        while not (stopping and answered):
            assert await asyncio.wait_for(get(port, "/"), PROBE_BOUND) == 200
            answered += 1
            await asyncio.sleep(0.05)

    task = asyncio.ensure_future(probe())
    try:
        yield
    finally:
        stopping = True
        await task  # raises what failed the probe


async def closed_after(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes, which must be within `within` s."""
    data = b""
    deadline = time.monotonic() + within
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), deadline - time.monotonic()):
            data += chunk
    return data


def warned(caplog: pytest.LogCaptureFixture, local_port: int, reason: str) -> bool:
    """Whether the server logged a warning naming this client's port and `reason`."""
    return any(
        record.levelname == "WARNING"
        and re.search(rf"127\.0\.0\.1:{local_port}\b", record.getMessage())
        and re.search(reason, record.getMessage())
        for record in caplog.records
    )


def local_port(writer: asyncio.StreamWriter) -> int:
    return int(writer.get_extra_info("sockname")[1])


async def test_a_head_sent_a_byte_at_a_time_is_cut_at_the_head_timeout(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    answer = asyncio.ensure_future(closed_after(reader, CLOSED_WITHIN + 1))
    started = time.monotonic()
    sent = 0
    async with normal_client(port):
        while not answer.done() and sent < len(head):
            with contextlib.suppress(ConnectionError):
                writer.write(head[sent : sent + 1])
                sent += 1
            await asyncio.sleep(0.05)
        data = await answer
    assert time.monotonic() - started < CLOSED_WITHIN, "closed by the head timeout"
    assert 10 < sent < len(head)  # still dripping (50 s in all) when it was cut
    assert data.startswith(b"HTTP/1.1 408 ") and b"connection: close" in data
    assert warned(caplog, local_port(writer), "request head unfinished")
    writer.close()


@pytest.mark.parametrize("drip", [None, 0.2], ids=["silent", "a byte every 0.2 s"])
async def test_a_body_that_never_ends_is_408_after_the_body_timeout(
    port: int, caplog: pytest.LogCaptureFixture, drip: float | None
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /instances HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
    answer = asyncio.ensure_future(closed_after(reader, CLOSED_WITHIN + 1))
    started = time.monotonic()
    async with normal_client(port):
        while drip and not answer.done():
            with contextlib.suppress(ConnectionError):
                writer.write(b" ")
            await asyncio.sleep(drip)
        data = await answer
    assert time.monotonic() - started < CLOSED_WITHIN
    assert data.startswith(b"HTTP/1.1 408 ") and b"connection: close" in data
    assert warned(caplog, local_port(writer), "request body unfinished")
    writer.close()


@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello, world\r\n0\r\n\r\n",
        b"5\r\nhello\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"5\r\nhello\r\n",
    ],
    ids=["bad size", "size overflows", "longer than declared", "next request, no end", "EOF"],
)
async def test_a_lying_chunked_body_is_400_and_closed(
    port: int, caplog: pytest.LogCaptureFixture, chunks: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /instances HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(chunks)
    if chunks.endswith(b"hello\r\n"):
        writer.write_eof()
    status, headers, _ = await read_response(reader)
    assert status == 400 and headers["connection"] == "close"
    assert await closed_after(reader, CLOSED_WITHIN) == b""
    assert warned(caplog, local_port(writer), "malformed request|ended unfinished")
    writer.close()


async def test_a_chunked_body_over_the_limit_is_413_and_closed_unread(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /instances HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    answer = asyncio.ensure_future(closed_after(reader, CLOSED_WITHIN))
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    sent = 0
    async with normal_client(port):
        with contextlib.suppress(ConnectionError):
            while not answer.done() and sent < 256 * 1024 * 1024:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        data = await answer
    assert data.startswith(b"HTTP/1.1 413 ") and b"connection: close" in data
    # What got through fits the kernel's socket buffers: the server read no more.
    assert sent < 32 * 1024 * 1024
    assert warned(caplog, local_port(writer), "answered before the request body ended")
    writer.close()


def _is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def open_counts(caplog: pytest.LogCaptureFixture) -> list[int]:
    """The open connections each logged eviction names ("idle the longest
    when N were open"): the count the server saw past its cap."""
    return [
        int(found[1])
        for record in caplog.records
        if (found := re.search(r"idle the longest when (\d+) were open", record.getMessage()))
    ]


async def test_thousands_of_idle_connections_are_capped_and_timed_out(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    count = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 3 * count:  # both ends live in this process
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(3 * count, hard), hard))
    idle: list[socket.socket] = []
    try:
        async with normal_client(port):
            for _ in range(count // 100):
                for _ in range(100):
                    sock = socket.socket()
                    sock.setblocking(False)
                    sock.connect_ex(("127.0.0.1", port))
                    idle.append(sock)
                await asyncio.sleep(0.01)  # the server accepts
            deadline = time.monotonic() + CLOSED_WITHIN  # the head timeout closes the rest
            while time.monotonic() < deadline:
                if all(map(_is_closed, idle)):
                    break
                await asyncio.sleep(0.1)
        assert all(map(_is_closed, idle)), "connections that sent nothing are closed"
        # The cap held: each eviction names at most the one connection over it.
        assert open_counts(caplog), "no connection was evicted at the cap"
        assert max(open_counts(caplog)) <= MAX_CONNECTIONS + 1, open_counts(caplog)
        ports = {sock.getsockname()[1] for sock in idle}
        assert any(warned(caplog, p, "idle the longest") for p in ports)
        assert any(warned(caplog, p, "no request within") for p in ports)
    finally:
        for sock in idle:
            sock.close()


async def test_a_pipelined_flood_is_cut_after_the_pipeline_limit_in_bounded_memory(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The flood is in the server's socket buffer before the server (on this
    loop) reads any of it, so its first read holds far more than
    MAX_PIPELINE requests: it answers the first and the MAX_PIPELINE queued
    behind it, in order, then closes; a server queueing without bound would
    answer all `count`."""
    count = 10_000
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with normal_client(port):
        tracemalloc.start()
        try:
            writer.write(b"".join(b"GET /flood/%d HTTP/1.1\r\n\r\n" % i for i in range(count)))
            answered = 0
            with contextlib.suppress(asyncio.IncompleteReadError):
                while answered < count:
                    status, _, body = await read_response(reader)
                    assert status == 404 and f'GET /flood/{answered}"'.encode() in body
                    answered += 1
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert answered == 1 + http_server.MAX_PIPELINE
    assert await closed_after(reader, CLOSED_WITHIN) == b""
    assert peak < 6 * 1024 * 1024, f"{peak} bytes allocated at most"
    assert warned(caplog, local_port(writer), "requests pipelined")
    writer.close()
