"""Running the gateway app in-process under uvicorn, for the tests here."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import uvicorn

from services.api_gateway.app import GatewayApp
from services.api_gateway.config import GatewayConfig

GatewayRunner = Callable[..., AbstractAsyncContextManager[str]]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_gateway(upstream: str, **settings: Any) -> AsyncIterator[str]:
    """The gateway in front of `upstream`; yields its base URL."""
    port = free_port()
    app = GatewayApp(GatewayConfig(api_address=upstream, port=port, **settings))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        app.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@pytest.fixture(scope="session")
def gateway_runner() -> GatewayRunner:
    """`async with gateway_runner(upstream, **config) as url: ...`"""
    return running_gateway
