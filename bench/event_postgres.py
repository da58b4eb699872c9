"""Events on PostgreSQL, in one run (issue 14's figures): ingest into an
eventlog whose store is a PostgreSQL database (target >= 10,000 events/s),
and the newest 100 events of one object among 1,000,000 (target p50 <= 10 ms).

A throwaway cluster (devmesh/postgres.py, `SERVER_SETTINGS`, fsync and
synchronous commits on) serves it all. Ingest is `event_ingest.stream_rate`:
3 producer processes, each an `EventEmitter`, into a whole mesh whose
eventlog is given a database's URL, as an operator's replicas are; measured
into an empty database, and again into one holding `event_reads`' 1,000,000
events, filled through the real `PostgresEventStore.append` and analysed (as
autovacuum would soon do, so the planner knows its size), on which
`event_reads`' cases are timed first.

    python -m bench event_postgres
"""

from __future__ import annotations

import random

from bench import event_ingest, event_reads
from bench.harness import quiet_mesh
from devmesh.postgres import started_postgres
from services.eventlog.postgres_store import PostgresEventStore

TARGET_INGEST = 10_000
"""Events per second."""
TARGET_READ_P50_MS = 10.0
SERVER_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "4GB", "wal_compression": "lz4"}
"""What an operator sets on a database server of this machine's size (24 GiB):
buffers that hold the million events' indexes, and fewer, smaller full-page
images in the WAL. Durability settings stay at their defaults (on)."""


def ingest_rate(url: str) -> float:
    """Events per second from 3 emitters into an eventlog on `url`."""
    with quiet_mesh(settings={"SFMESH_EVENTLOG_DATABASE": url}) as mesh:
        service_key = (mesh.state_dir / "service.key").read_text().strip()
        return event_ingest.stream_rate(mesh.address("eventlog"), service_key=service_key)


def print_ingest(rate: float, store: str) -> None:
    """One ingest figure against its target."""
    verdict = "ok" if rate >= TARGET_INGEST else "MISSED"
    print(
        f"events on postgres: ingest into {store}, {event_ingest.PRODUCERS} emitters into one"
        f" eventlog: {rate:,.0f} events/s ({event_ingest.STREAM_EVENTS:,} events;"
        f" target >= {TARGET_INGEST:,}: {verdict})"
    )


def main() -> None:
    """Ingest into an empty database; fill another, time its reads, ingest into it."""
    with started_postgres(settings=SERVER_SETTINGS) as server:
        print_ingest(ingest_rate(server.create_database("empty")), "an empty store")
        url = server.create_database("events")
        store = PostgresEventStore(url)
        try:
            rng = random.Random(42)
            objects, hot = event_reads.fill(store, rng)
            with server.connect(url) as conn:
                conn.execute("VACUUM ANALYZE events")
            event_reads.time_reads(store, objects, hot, rng, target_ms=TARGET_READ_P50_MS)
        finally:
            store.close()
        print_ingest(ingest_rate(url), f"a store of {event_reads.TOTAL:,}")


if __name__ == "__main__":
    main()
