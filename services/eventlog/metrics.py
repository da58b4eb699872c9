"""The eventlog's metrics: events ingested, events per store transaction,
and the store's size, sampled now and then (never on the ingest path)."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter, Gauge, Histogram

from services.eventlog.storage import EventStore

log = logging.getLogger("sfmesh.eventlog")

SIZE_INTERVAL = 10.0
"""Seconds between two samples of the store's size."""

INGESTED = Counter(
    "sfmesh_eventlog_ingested_events_total",
    "Events committed to the store, replays of events already stored included.",
)
BATCH_SIZE = Histogram(
    "sfmesh_eventlog_ingest_batch_size",
    "Events per store transaction (every batch waiting is committed together).",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
STORE_BYTES = Gauge(
    "sfmesh_eventlog_store_bytes",
    "Bytes the event store takes: the SQLite file and its WAL, or the "
    "PostgreSQL events table with its indexes.",
)


def committed(events: int) -> None:
    """Count one store transaction of `events` events."""
    INGESTED.inc(events)
    BATCH_SIZE.observe(events)


async def sample_size_forever(store: EventStore, every: float = SIZE_INTERVAL) -> None:
    """Set STORE_BYTES from the store now and every `every` seconds, until
    cancelled; a store that cannot answer keeps the last sample."""
    while True:
        try:
            STORE_BYTES.set(await asyncio.to_thread(store.size_bytes))
        except Exception as exc:
            log.debug("cannot read the event store's size: %s", exc)
        await asyncio.sleep(every)
