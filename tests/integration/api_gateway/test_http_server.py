"""The gateway's HTTP/1.1 server (`http_server.py`, `server.py`) over raw sockets.

A toy ASGI app stands in for the gateway app, so each test can pin one
behaviour of the server itself: keep-alive, pipelining, chunked streaming,
disconnects, HEAD, bad requests, 100-continue and graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.api_gateway import http_server
from services.api_gateway.access import HTTP_REQUESTS
from services.api_gateway.config import GatewayConfig
from services.api_gateway.server import GatewayServer, build_server
from services.api_gateway.types import Receive, Scope, Send
from services.common import metrics
from services.common.metrics import RequestMetrics


class ToyApp:
    """Answers by path; records what the tests need to see."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.stopped = False
        self.lifespan: list[str] = []

    def request_stop(self) -> None:
        self.stopped = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.lifespan.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        path = scope["path"]
        if path.startswith("/things/"):
            scope["route"] = "/things/{ref}"
        if path == "/slow":
            await asyncio.sleep(float(scope["query_string"] or b"0.1"))
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"one\n", "more_body": True})
            await self.release.wait()
            await send({"type": "http.response.body", "body": b"two\n", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/hang":
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        answer = orjson.dumps({"method": scope["method"], "path": path, "body": body.decode()})
        headers = [(b"content-length", str(len(answer)).encode()), (b"x-request-id", b"rid-1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def server() -> AsyncIterator[GatewayServer]:
    gateway = GatewayServer(GatewayConfig(port=0), ToyApp())
    task = asyncio.ensure_future(gateway.serve())
    while not gateway.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    yield gateway
    gateway.should_exit = True
    await asyncio.wait_for(task, 15)


def app_of(server: GatewayServer) -> ToyApp:
    assert isinstance(server.gateway, ToyApp)
    return server.gateway


async def connect(server: GatewayServer) -> Conn:
    port = server.servers[0].sockets[0].getsockname()[1]
    return await asyncio.open_connection("127.0.0.1", port)


def request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = raw.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    return int(lines[0].split()[1]), headers


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status, headers = await read_head(reader)
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    body = b""
    while size := int(await reader.readline(), 16):
        body += await reader.readexactly(size)
        await reader.readline()
    await reader.readline()
    return status, headers, body


async def test_keep_alive_answers_several_requests_on_one_connection(
    server: GatewayServer,
) -> None:
    reader, writer = await connect(server)
    for index in range(3):
        writer.write(request("POST", f"/n{index}", b"hello"))
        status, headers, body = await read_response(reader)
        assert status == 200
        assert orjson.loads(body) == {"method": "POST", "path": f"/n{index}", "body": "hello"}
        assert "date" in headers and "server" not in headers and "connection" not in headers
    writer.close()


async def test_pipelined_requests_are_answered_in_order(server: GatewayServer) -> None:
    reader, writer = await connect(server)
    writer.write(request("GET", "/slow?0.2") + request("GET", "/fast") + request("GET", "/x"))
    paths = [orjson.loads((await read_response(reader))[2])["path"] for _ in range(3)]
    assert paths == ["/slow", "/fast", "/x"]
    writer.close()


async def test_pipelined_requests_over_64_kib_are_not_taken_for_one_large_head(
    server: GatewayServer,
) -> None:
    reader, writer = await connect(server)
    padding = f"X-Pad: {'p' * 2000}\r\n"
    writer.write(b"".join(request("GET", f"/p{i}", extra=padding) for i in range(40)))
    writer.write(b"GET /last HTTP/1.1\r\nHost: x\r\n")  # the head ends in a later read
    await asyncio.sleep(0.1)
    writer.write(b"\r\n")
    paths = [orjson.loads((await read_response(reader))[2])["path"] for _ in range(41)]
    assert paths == [*(f"/p{i}" for i in range(40)), "/last"]
    writer.close()


async def test_a_stream_is_chunked_and_each_message_flushed(server: GatewayServer) -> None:
    reader, writer = await connect(server)
    writer.write(request("GET", "/stream"))
    status, headers = await read_head(reader)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert await asyncio.wait_for(reader.readuntil(b"one\n\r\n"), 2) == b"4\r\none\n\r\n"
    app_of(server).release.set()
    assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 2) == b"4\r\ntwo\n\r\n0\r\n\r\n"
    writer.close()


async def test_a_lost_connection_reaches_the_app_as_a_disconnect(server: GatewayServer) -> None:
    _, writer = await connect(server)
    writer.write(request("GET", "/hang"))
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()
    await asyncio.wait_for(app_of(server).disconnected.wait(), 2)


async def test_head_sends_the_headers_without_the_body(server: GatewayServer) -> None:
    reader, writer = await connect(server)
    writer.write(request("HEAD", "/h") + request("GET", "/after"))
    status, headers = await read_head(reader)
    assert status == 200 and int(headers["content-length"]) > 0
    status, _, body = await read_response(reader)  # nothing of the HEAD body in between
    assert status == 200 and orjson.loads(body)["path"] == "/after"
    writer.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (http_server.MAX_HEAD + 10), 431),
    ],
)
async def test_bad_requests_are_answered_and_the_connection_closed(
    server: GatewayServer, raw: bytes, status: int
) -> None:
    reader, writer = await connect(server)
    writer.write(raw)
    got, headers = await read_head(reader)
    assert got == status and headers["connection"] == "close"
    await reader.readexactly(int(headers["content-length"]))
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_http_1_0_closes_after_the_response(server: GatewayServer) -> None:
    reader, writer = await connect(server)
    writer.write(b"GET /old HTTP/1.0\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_expect_100_continue_is_answered_before_the_body(server: GatewayServer) -> None:
    reader, writer = await connect(server)
    writer.write(b"POST /up HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(b"ok")
    status, _, body = await read_response(reader)
    assert status == 200 and orjson.loads(body)["body"] == "ok"
    writer.close()


async def test_each_request_is_access_logged(
    server: GatewayServer, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await connect(server)
    with caplog.at_level(logging.INFO, logger="sfmesh.api_gateway.access"):
        writer.write(request("GET", "/logged"))
        await read_response(reader)
        await asyncio.sleep(0.01)
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name.endswith(".access")]
    assert lines[-1]["path"] == "/logged" and lines[-1]["status"] == 200
    assert lines[-1]["request_id"] == "rid-1" and lines[-1]["duration_ms"] >= 0
    writer.close()


async def test_each_request_is_counted_under_its_route_pattern() -> None:
    registry = CollectorRegistry()
    counted = RequestMetrics("t_http", ("route", "method"), what="t", registry=registry)
    gateway = GatewayServer(GatewayConfig(port=0), ToyApp(), metrics=counted)
    task = asyncio.ensure_future(gateway.serve())
    while not gateway.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    reader, writer = await connect(gateway)
    for path in ("/things/0b7c1f", "/things/9d2e44", "/elsewhere/0b7c1f"):
        writer.write(request("GET", path))
        await read_response(reader)
    await asyncio.sleep(0.01)
    value = registry.get_sample_value
    things = {"route": "/things/{ref}", "method": "GET"}
    assert value("t_http_requests_total", {**things, "code": "200"}) == 2
    assert value("t_http_request_duration_seconds_count", things) == 2
    unmatched = {"route": "unmatched", "method": "GET", "code": "200"}
    assert value("t_http_requests_total", unmatched) == 1
    writer.close()
    gateway.should_exit = True
    await asyncio.wait_for(task, 15)


def test_the_gateway_counts_requests_only_when_it_serves_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "_enabled", False)
    assert build_server(GatewayConfig(port=0)).listener.metrics is None
    monkeypatch.setattr(metrics, "_enabled", True)
    assert build_server(GatewayConfig(port=0)).listener.metrics is HTTP_REQUESTS


async def test_graceful_shutdown_finishes_a_request_in_flight() -> None:
    app = ToyApp()
    gateway = GatewayServer(GatewayConfig(port=0), app)
    task = asyncio.ensure_future(gateway.serve())
    while not gateway.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.01)
    port = gateway.servers[0].sockets[0].getsockname()[1]
    busy_reader, busy_writer = await connect(gateway)
    idle_reader, idle_writer = await connect(gateway)
    busy_writer.write(request("GET", "/slow?0.3"))
    await asyncio.sleep(0.05)
    gateway.should_exit = True
    assert await asyncio.wait_for(idle_reader.read(), 2) == b""  # idle: closed at once
    status, headers, body = await read_response(busy_reader)
    assert status == 200 and headers["connection"] == "close"
    assert orjson.loads(body)["path"] == "/slow"
    await asyncio.wait_for(task, 5)
    assert app.lifespan == ["lifespan.startup", "lifespan.shutdown"]
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    for writer in (busy_writer, idle_writer):
        with contextlib.suppress(OSError):
            writer.close()
