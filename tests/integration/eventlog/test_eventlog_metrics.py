"""The eventlog's metrics (`services/eventlog/metrics.py`): ingest counted
per store transaction by the writer, and the store's size sampled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.eventlog import metrics
from services.eventlog.sqlite_store import SqliteEventStore
from services.eventlog.writer import Writer
from tests.event_records import rec
from tests.metric_samples import sample


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    store = SqliteEventStore(tmp_path / "events.db")
    made = Writer(store)
    yield made
    made.close()
    store.close()


async def test_committed_events_are_counted_with_their_transactions(writer: Writer) -> None:
    ingested = sample("sfmesh_eventlog_ingested_events_total")
    transactions = sample("sfmesh_eventlog_ingest_batch_size_count")
    sizes = sample("sfmesh_eventlog_ingest_batch_size_sum")
    # three producers' batches arrive together: one transaction (group commit)
    await asyncio.gather(
        *(writer.append(p, [rec(f"{p}-{n}", n) for n in range(1, 4)]) for p in "abc")
    )
    assert sample("sfmesh_eventlog_ingested_events_total") == ingested + 9
    assert sample("sfmesh_eventlog_ingest_batch_size_count") == transactions + 1
    assert sample("sfmesh_eventlog_ingest_batch_size_sum") == sizes + 9
    await writer.append("a", [rec("a-4", 4)])
    assert sample("sfmesh_eventlog_ingested_events_total") == ingested + 10
    assert sample("sfmesh_eventlog_ingest_batch_size_count") == transactions + 2


async def test_the_store_size_is_sampled(writer: Writer) -> None:
    await writer.append("p", [rec(f"e{n}", n) for n in range(1, 101)])
    sampling = asyncio.create_task(metrics.sample_size_forever(writer.store, every=0.01))
    try:
        await asyncio.sleep(0.1)
        assert sample("sfmesh_eventlog_store_bytes") == writer.store.size_bytes() > 0
    finally:
        sampling.cancel()
