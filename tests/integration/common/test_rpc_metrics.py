"""The per-RPC series (services/common/interceptors.py, `GRPC_REQUESTS`) on
real grpc.aio servers built by `start_server`: counted by method and code
when the process serves metrics, a stream once when it ends, nothing when off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from services.common import errors, metrics
from services.common.server import Running, Servicer, start_server
from services.common.tokens import TokenAuthority
from services.common.transport import Transport

SERVICE = "test.MetricsProbe"


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def missing(request: bytes, context: Any) -> bytes:
    raise errors.NotFound("no such thing")


async def three(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for _ in range(3):
        yield request


async def endless(request: bytes, context: Any) -> AsyncIterator[bytes]:
    while True:
        yield request
        await asyncio.sleep(0.01)


def register(implementation: Any, server: grpc.aio.Server) -> None:
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Missing": grpc.unary_unary_rpc_method_handler(missing),
        "Three": grpc.unary_stream_rpc_method_handler(three),
        "Endless": grpc.unary_stream_rpc_method_handler(endless),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


Start = Callable[[bool], Awaitable[grpc.aio.Channel]]


@pytest.fixture
async def start(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Start]:
    """Starts a server with metrics on or off, and answers a channel to it."""
    opened: list[tuple[Running, grpc.aio.Channel]] = []

    async def starting(on: bool) -> grpc.aio.Channel:
        monkeypatch.setattr(metrics, "_enabled", on)
        running = await start_server(
            address="127.0.0.1:0",
            servicers=[Servicer(SERVICE, None, register)],
            authority=TokenAuthority(internal_secret="s", user_secret="u"),
            transport=Transport(),
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        opened.append((running, channel))
        return channel

    yield starting
    for running, channel in opened:
        await channel.close()
        await running.server.stop(0)


def count(method: str, code: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "sfmesh_grpc_requests_total", {"method": f"/{SERVICE}/{method}", "code": code}
        )
        or 0.0
    )


def timed(method: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "sfmesh_grpc_request_duration_seconds_count", {"method": f"/{SERVICE}/{method}"}
        )
        or 0.0
    )


async def until(check: Callable[[], bool]) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request was not recorded")


async def test_requests_are_counted_by_method_and_code(start: Start) -> None:
    channel = await start(True)
    before = count("Echo", "OK"), count("Missing", "NOT_FOUND"), timed("Echo")
    await channel.unary_unary(f"/{SERVICE}/Echo")(b"x", timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await channel.unary_unary(f"/{SERVICE}/Missing")(b"x", timeout=5)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    await until(lambda: count("Missing", "NOT_FOUND") == before[1] + 1)
    assert count("Echo", "OK") == before[0] + 1 and timed("Echo") == before[2] + 1


async def test_a_stream_is_counted_once_when_it_ends(start: Start) -> None:
    channel = await start(True)
    ended, cancelled = count("Three", "OK"), count("Endless", "CANCELLED")
    replies = [reply async for reply in channel.unary_stream(f"/{SERVICE}/Three")(b"x")]
    assert len(replies) == 3
    await until(lambda: count("Three", "OK") == ended + 1)
    call = channel.unary_stream(f"/{SERVICE}/Endless")(b"x")
    assert await call.read() == b"x"
    assert count("Endless", "CANCELLED") == cancelled  # not while it runs
    call.cancel()
    await until(lambda: count("Endless", "CANCELLED") == cancelled + 1)


async def test_with_metrics_off_nothing_is_recorded(start: Start) -> None:
    channel = await start(False)
    before = count("Echo", "OK"), timed("Echo")
    await channel.unary_unary(f"/{SERVICE}/Echo")(b"x", timeout=5)
    await asyncio.sleep(0.05)
    assert (count("Echo", "OK"), timed("Echo")) == before
