"""Build and run the gateway: its own HTTP/1.1 server (`http_server.py`) around the app.

The app's lifespan startup loads the upstream descriptors, and only then is the
port bound. SIGTERM / SIGINT set `should_exit` and tell the app to stop: a
pending start-up gives up, open streams end, the socket stops accepting, idle
connections close, in-flight requests finish (up to `_GRACE` seconds, then are
cancelled), and the lifespan shutdown closes the upstream channel. A second
signal stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from services.api_gateway.access import HTTP_REQUESTS
from services.api_gateway.app import GatewayApp
from services.api_gateway.config import GatewayConfig
from services.api_gateway.http_server import HttpProtocol, Limits, Listener
from services.api_gateway.https import server_context
from services.api_gateway.types import AsgiMessage, Receive, Scope, Send
from services.common import metrics
from services.common.metrics import RequestMetrics
from services.common.transport import TlsConfigError

log = logging.getLogger("sfmesh.api_gateway.server")

_GRACE = 10.0
_BACKLOG = 2048
_STARTUP_FAILURE = 3
"""Exit status when start-up fails (uvicorn's)."""
_OTHER_FILES = 64
"""Open files kept for other than client connections (listening socket, upstream, logs)."""


class StoppableApp(Protocol):
    """An ASGI app that can be told to stop (`GatewayApp`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def request_stop(self) -> None: ...


class _Lifespan:
    """Drives the app's ASGI lifespan protocol."""

    def __init__(self, app: StoppableApp) -> None:
        self._inbox: asyncio.Queue[AsgiMessage] = asyncio.Queue()
        self._outbox: asyncio.Queue[AsgiMessage] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.ensure_future(app(scope, self._inbox.get, self._outbox.put))

    async def startup(self) -> str | None:
        """None once the app has started, else why it failed."""
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply["type"] == "lifespan.startup.complete":
            return None
        return str(reply.get("message") or "lifespan startup failed")

    async def shutdown(self) -> None:
        """Ask the app to shut down and wait until it has."""
        if self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        reply = await self._reply()
        if reply["type"] != "lifespan.shutdown.complete":
            log.error("shutdown failed: %s", reply.get("message", ""))

    async def _reply(self) -> AsgiMessage:
        getter = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        error = None if self._task.cancelled() else self._task.exception()
        return {"type": "lifespan.failed", "message": repr(error) if error else "app returned"}


class GatewayServer:
    """The gateway app behind `HttpProtocol`, with lifespan, signals and graceful stop."""

    def __init__(
        self, config: GatewayConfig, app: StoppableApp, *, metrics: RequestMetrics | None = None
    ) -> None:
        """`metrics`: where requests are counted (`access.py`); None for none."""
        self.config = config
        self.gateway = app
        self.started = False
        self.force_exit = False
        self.servers: list[asyncio.Server] = []
        self.listener = Listener(
            Limits(
                head_timeout=config.head_timeout,
                body_timeout=config.body_timeout,
                max_connections=connection_cap(config.max_connections),
            ),
            metrics,
        )
        self._exit = asyncio.Event()
        self._drained: asyncio.Task[Any] | None = None

    @property
    def should_exit(self) -> bool:
        """Whether the server has been asked to stop; set it to stop it."""
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._exit.set()

    async def serve(self) -> None:
        """Start the app, bind, serve until asked to stop, then stop gracefully."""
        loop = asyncio.get_running_loop()
        with self._signals(loop):
            lifespan = _Lifespan(self.gateway)
            failure = await lifespan.startup()
            if failure is not None:
                log.error("start-up failed: %s", failure)
                raise SystemExit(_STARTUP_FAILURE)
            if not self.should_exit:
                try:
                    server = await self._listen(loop)
                except (OSError, TlsConfigError) as exc:
                    log.error("%s", exc)
                    await lifespan.shutdown()
                    raise SystemExit(_STARTUP_FAILURE) from None
                self.servers = [server]
                self.started = True
                await self._exit.wait()
                await self._shutdown(server)
            if not self.force_exit:
                await lifespan.shutdown()

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> asyncio.Server:
        """Bind the port: HTTPS when the config has TLS files, else HTTP.
        A client gets `head_timeout` for its TLS handshake as for its head."""
        tls = self.config.transport.tls
        context = None if tls is None else server_context(tls)
        return await loop.create_server(
            lambda: HttpProtocol(self.gateway, self.listener),
            self.config.host,
            self.config.port,
            backlog=_BACKLOG,
            ssl=context,
            ssl_handshake_timeout=None if context is None else self.config.head_timeout,
        )

    async def _shutdown(self, server: asyncio.AbstractServer) -> None:
        server.close()
        listener = self.listener
        for connection in list(listener.connections):
            connection.shutdown()
        if not listener.connections and not listener.tasks:
            return
        drained = self._drained = asyncio.ensure_future(listener.emptied.wait())
        await asyncio.wait({drained}, timeout=_GRACE)  # a second signal cancels it
        if drained.done() and not drained.cancelled():
            return
        drained.cancel()
        log.error("cancelling %d request(s) still running at shutdown", len(listener.tasks))
        for task in list(listener.tasks):
            task.cancel()
        for connection in list(listener.connections):
            connection.close()
        if listener.tasks:
            await asyncio.wait(list(listener.tasks), timeout=1.0)

    @contextlib.contextmanager
    def _signals(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
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
            if self._drained is not None:
                self._drained.cancel()
        self.should_exit = True
        self.gateway.request_stop()


def connection_cap(wanted: int) -> int:
    """`wanted`, or fewer if the open-file limit would stop accepts first (the
    cap then still frees room for new clients)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft - _OTHER_FILES:
        return wanted
    cap = max(1, soft - _OTHER_FILES)
    log.warning("at most %d connections, not %d: the open-file limit is %d", cap, wanted, soft)
    return cap


def build_server(config: GatewayConfig) -> GatewayServer:
    """The HTTP server around a fresh gateway app; it counts requests when
    the process serves metrics (`serve_metrics`)."""
    counted = HTTP_REQUESTS if metrics.enabled() else None
    return GatewayServer(config, GatewayApp(config), metrics=counted)


async def serve(config: GatewayConfig) -> None:
    """Run the gateway until SIGTERM / SIGINT."""
    await build_server(config).serve()
