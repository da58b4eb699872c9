"""Builds the eventlog process: the store, its single writer, the servicer,
and the background pruning."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sfmesh.v1 import eventlog_service_pb2_grpc

from services.common.config import MeshConfig
from services.common.main import service_authority
from services.common.server import Servicer, serve, start_server
from services.eventlog import metrics, retention
from services.eventlog.servicer import EventLogServicer
from services.eventlog.stores import open_store
from services.eventlog.writer import Writer

log = logging.getLogger("sfmesh.eventlog")


@dataclass(frozen=True)
class EventLogConfig:
    """Settings of the eventlog service."""

    mesh: MeshConfig
    """Where the state folder is."""
    listen: str
    """The gRPC listen address."""
    database: str
    """The SQLite file, or a `postgresql://` URL (`stores.py`)."""
    retention: Mapping[int, float]
    """Seconds to keep each event type; negative keeps forever."""
    prune_interval: float
    """Seconds between pruning sweeps."""


async def serve_eventlog(config: EventLogConfig) -> None:
    """Run the eventlog until SIGTERM."""
    store = open_store(config.database)
    writer = Writer(store)
    chores = [
        asyncio.create_task(prune_forever(writer, config)),
        asyncio.create_task(metrics.sample_size_forever(store)),
    ]

    async def close() -> None:
        for chore in chores:
            chore.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chore
        writer.close()
        store.close()

    running = await start_server(
        address=config.listen,
        servicers=[
            Servicer(
                "sfmesh.v1.EventLogService",
                EventLogServicer(store, writer),
                eventlog_service_pb2_grpc.add_EventLogServiceServicer_to_server,
            )
        ],
        authority=service_authority(config.mesh.state_dir, config.mesh.transport),
        transport=config.mesh.transport,
    )
    await serve(running, on_stop=close)


async def prune_forever(writer: Writer, config: EventLogConfig) -> None:
    """Prune expired events now and then, leaving a prune event on each object."""
    producer = f"eventlog@{socket.getfqdn()}"
    while True:
        try:
            now = time.time()
            notes = await writer.run(functools.partial(writer.store.prune, now, config.retention))
            records = retention.prune_records(notes, now, socket.getfqdn())
            if records:
                await writer.append(producer, records)
        except Exception:
            log.exception("pruning failed; trying again at the next sweep")
        await asyncio.sleep(config.prune_interval)
