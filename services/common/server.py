"""Bootstrap shared by every gRPC service: interceptors, health, reflection,
servicers, the listening port (TLS or plaintext, `transport.py`), and a
graceful stop on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import metrics
from services.common.interceptors import (
    GRPC_REQUESTS,
    AuthInterceptor,
    CallerCheck,
    RequestInterceptor,
)
from services.common.reflection import enable_reflection
from services.common.tokens import TokenAuthority
from services.common.tracing import server_interceptors
from services.common.transport import Transport

log = logging.getLogger("sfmesh.server")

STOP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Servicer:
    """One proto service implementation to register."""

    name: str
    """The service's full name, e.g. "sfmesh.v1.InstanceService"."""
    implementation: Any
    """The servicer object."""
    register: Callable[[Any, grpc.aio.Server], None]
    """The generated `add_<Service>Servicer_to_server` function."""


@dataclass(frozen=True)
class Running:
    """A started server and what stopping it needs."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    address: str
    """The address it was asked to listen on."""
    port: int
    """The port bound (the one asked, or the one picked for port 0)."""


async def start_server(
    *,
    address: str,
    servicers: Sequence[Servicer],
    authority: TokenAuthority,
    transport: Transport,
    clients_prove: bool = True,
    published: Sequence[str] = (),
    check: CallerCheck | None = None,
) -> Running:
    """Build the server (interceptors, servicers, health, reflection), bind
    `address` and start serving; exits the process when it cannot bind.

    `published` names contracts this process announces through reflection
    without serving them yet, so clients can see their shape. `check` runs on
    every verified caller and may refuse it (see `AuthInterceptor`). With a
    secure `transport` the port is TLS, clients must present a certificate of
    the mesh CA unless `clients_prove` is False (the api, which serves users),
    and internal callers are who their certificate says. Requests are
    counted and timed when the process serves metrics (`metrics.enabled()`).
    """
    auth = AuthInterceptor(authority, check=check, certificates=transport.secure)
    server = grpc.aio.server(
        interceptors=[
            RequestInterceptor(GRPC_REQUESTS if metrics.enabled() else None),
            *server_interceptors(),
            auth,
        ],
        # gRPC's default SO_REUSEPORT would let this server share its port
        # with a leftover one, each answering some of the connections.
        options=[("grpc.so_reuseport", 0)],
    )
    for servicer in servicers:
        servicer.register(servicer.implementation, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.name for s in servicers]
    enable_reflection([*names, *published, health.SERVICE_NAME], server)
    try:
        port = transport.listen(server, address, clients_prove=clients_prove)
    except RuntimeError:
        log.error(
            "cannot listen on %s: in use, not an address of this host, or unusable TLS files",
            address,
        )
        raise SystemExit(1) from None
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        extra={"fields": {"address": address, "services": names, "tls": transport.secure}},
    )
    return Running(server, health_servicer, address, port)


async def serve(
    running: Running,
    *,
    on_stopping: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully: `on_stopping`
    runs before the RPCs in flight are given their grace, `on_stop` after."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.create_task(running.server.wait_for_termination())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping", extra={"fields": {"address": running.address}})
    if on_stopping is not None:
        await on_stopping()
    await running.health.enter_graceful_shutdown()
    await running.server.stop(STOP_GRACE_SECONDS)
    if on_stop is not None:
        await on_stop()
    stopping.cancel()
    serving.cancel()
