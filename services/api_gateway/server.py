"""Build and run the HTTP server: uvicorn around the gateway app, plus access logs.

The app's lifespan loads the upstream descriptors, so uvicorn binds the port
only once routes exist. SIGTERM / SIGINT set uvicorn's exit flag and tell the
app to stop: a pending start-up gives up, open streams end, in-flight unary
requests finish (up to `_GRACE` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Generator

import uvicorn

from services.api_gateway.app import GatewayApp
from services.api_gateway.config import GatewayConfig
from services.api_gateway.types import AsgiMessage, Receive, Scope, Send

log = logging.getLogger("sfmesh.api_gateway.access")

_GRACE = 10


class AccessLog:
    """ASGI middleware: one JSON log line per HTTP request."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, object] = {"status": 0, "request_id": ""}

        async def watch(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-request-id":
                        seen["request_id"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            line = {
                "method": scope["method"],
                "path": scope["path"],
                "status": seen["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "request_id": seen["request_id"],
            }
            log.info(json.dumps(line))


class _Server(uvicorn.Server):
    """uvicorn, with signals that also stop the app and no re-raise afterwards."""

    def __init__(self, config: uvicorn.Config, app: GatewayApp) -> None:
        super().__init__(config)
        self.gateway = app

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        self.gateway.request_stop()


_KEEP_ALIVE = 75
"""Seconds an idle keep-alive connection stays open (uvicorn's 5 s drops
connections that clients such as requests' sessions expect to reuse)."""


def build_server(config: GatewayConfig) -> _Server:
    """The uvicorn server around a fresh gateway app."""
    app = GatewayApp(config)
    uv_config = uvicorn.Config(
        AccessLog(app),
        host=config.host,
        port=config.port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        proxy_headers=False,
        http="httptools",
        timeout_keep_alive=_KEEP_ALIVE,
        timeout_graceful_shutdown=_GRACE,
    )
    return _Server(uv_config, app)


async def serve(config: GatewayConfig) -> None:
    """Run the gateway until SIGTERM / SIGINT."""
    await build_server(config).serve()
