"""Bootstrap shared by every gRPC service: interceptors, health, reflection,
servicers, and a graceful stop on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common.interceptors import AuthInterceptor, CallerCheck, RequestInterceptor
from services.common.reflection import enable_reflection
from services.common.tokens import TokenAuthority

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


async def serve(
    *,
    address: str,
    servicers: Sequence[Servicer],
    authority: TokenAuthority,
    published: Sequence[str] = (),
    on_start: Callable[[], Awaitable[None]] | None = None,
    on_stopping: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    check: CallerCheck | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully.

    `published` names contracts this process announces through reflection
    without serving them yet, so clients can see their shape. `on_start` runs
    once the port is bound, before health says SERVING; `on_stopping` when the
    stop signal comes, before the RPCs in flight are given their grace;
    `on_stop` once they are done. `check` runs on every verified caller and
    may refuse it (see `AuthInterceptor`).
    """
    server = grpc.aio.server(
        interceptors=[RequestInterceptor(), AuthInterceptor(authority, check=check)],
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
        server.add_insecure_port(address)
    except RuntimeError:
        log.error("cannot listen on %s: in use, or not an address of this host", address)
        raise SystemExit(1) from None
    await server.start()
    if on_start is not None:
        await on_start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"fields": {"address": address, "services": names}})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.create_task(server.wait_for_termination())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping", extra={"fields": {"address": address}})
    if on_stopping is not None:
        await on_stopping()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(STOP_GRACE_SECONDS)
    if on_stop is not None:
        await on_stop()
    stopping.cancel()
    serving.cancel()
