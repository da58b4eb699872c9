"""Event reads: how fast the eventlog answers "the newest 100 events of one object"
when the store holds a million events (target p50 <= 5 ms).

Builds a store of 1,000,000 events in a temporary folder through the real
`SqliteEventStore.append` (large batches; `fill` and `time_reads` serve any
`EventStore`, bench/event_postgres.py's too), spread over 10,000 objects plus one hot
object holding 20,000 events, with payloads shaped like Shaken Fist's (attribute
writes, request ids, usage samples). Then times the real read path, `newest()`,
including the conversion of rows to `event_pb2.Event`.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from google.protobuf import struct_pb2
from sfmesh.v1 import event_pb2, eventlog_service_pb2

from services.eventlog.sqlite_store import SqliteEventStore
from services.eventlog.storage import EventStore

TOTAL = 1_000_000
OBJECTS = 10_000
HOT_EVENTS = 20_000
BATCH = 20_000
QUERIES = 1_000
TARGET_P50_MS = 5.0

_KINDS = [
    (event_pb2.EVENT_TYPE_MUTATE, "set attribute"),
    (event_pb2.EVENT_TYPE_STATUS, "fetch image complete"),
    (event_pb2.EVENT_TYPE_AUDIT, "poweron"),
    (event_pb2.EVENT_TYPE_USAGE, "usage"),
]
_WEIGHTS = [30, 40, 15, 15]


def _extra(kind: int, rng: random.Random) -> struct_pb2.Struct:
    """A payload shaped like Shaken Fist's for this kind of event."""
    extra = struct_pb2.Struct()
    if kind == event_pb2.EVENT_TYPE_MUTATE:
        extra.update({"attribute": "state", "value": "created", "update_time": 1.7e9})
    elif kind == event_pb2.EVENT_TYPE_USAGE:
        extra.update(
            {
                "cpu usage": {"cpu time ns": rng.randrange(10**12), "system time ns": 12345},
                "disk usage": {
                    "vda": {"rd_req": 1024, "wr_bytes": 4096, "actual bytes on disk": 1}
                },
                "network usage": {"02:00:00:aa:bb:cc": {"read bytes": 1500, "write bytes": 900}},
            }
        )
    else:
        extra.update({"request-id": str(uuid.UUID(int=rng.getrandbits(128)))})
    return extra


def _templates(rng: random.Random) -> list[eventlog_service_pb2.EventRecord]:
    """A few hundred records to copy from, so building a million stays cheap."""
    templates = []
    for i in range(400):
        kind, message = rng.choices(_KINDS, _WEIGHTS)[0]
        record = eventlog_service_pb2.EventRecord(
            object_type="instance", type=kind, fqdn=f"node{i % 8}.example.com", message=message
        )
        record.extra.CopyFrom(_extra(kind, rng))
        if kind == event_pb2.EVENT_TYPE_STATUS:
            record.duration = 1.25
        templates.append(record)
    return templates


def _batches(
    objects: list[str], hot: str, rng: random.Random, start: float
) -> Iterator[list[eventlog_service_pb2.EventRecord]]:
    """TOTAL records in time order, objects interleaved, in batches of BATCH."""
    templates = _templates(rng)
    hot_every = TOTAL // HOT_EVENTS
    batch: list[eventlog_service_pb2.EventRecord] = []
    for n in range(1, TOTAL + 1):
        record = eventlog_service_pb2.EventRecord()
        record.CopyFrom(templates[rng.randrange(len(templates))])
        record.event_id = f"bench-{n}"
        record.sequence = n
        record.object_uuid = hot if n % hot_every == 0 else objects[rng.randrange(len(objects))]
        record.timestamp = start + n * 2.5
        batch.append(record)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _percentiles(call: Callable[[], object], rounds: int) -> tuple[float, float]:
    """p50 and p95 of `call` in milliseconds."""
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[94]


def fill(store: EventStore, rng: random.Random) -> tuple[list[str], str]:
    """Append TOTAL events to `store` in batches of BATCH and print how long it
    took; returns the objects' uuids and the hot object's."""
    objects = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(OBJECTS)]
    hot = str(uuid.UUID(int=rng.getrandbits(128)))
    began = time.perf_counter()
    for batch in _batches(objects, hot, rng, start=time.time() - 30 * 86400):
        store.append("bench", batch)
    built = time.perf_counter() - began
    print(
        f"event reads: built {TOTAL:,} events over {OBJECTS:,} objects through append"
        f" (batches of {BATCH:,}) in {built:.1f} s ({TOTAL / built:,.0f} events/s)"
    )
    return objects, hot


def time_reads(
    store: EventStore, objects: list[str], hot: str, rng: random.Random, *, target_ms: float
) -> None:
    """Time the real read paths of a filled store and print p50 and p95 of each."""
    hot_count = len(store.newest("instance", hot, limit=-1))

    def random_object() -> object:
        return store.newest("instance", objects[rng.randrange(OBJECTS)], limit=100)

    cases: list[tuple[str, Callable[[], object]]] = [
        (f"newest 100 of one object among {TOTAL:,}", random_object),
        (
            f"newest 100 of the hot object ({hot_count:,} events)",
            lambda: store.newest("instance", hot, limit=100),
        ),
        (
            "newest 100 status events of the hot object",
            lambda: store.newest(
                "instance", hot, event_type=event_pb2.EVENT_TYPE_STATUS, limit=100
            ),
        ),
        (
            "after() the hot object's last 10 events (a watch catching up)",
            lambda: store.after("instance", hot, cursor=store.last_cursor() - 500),
        ),
    ]
    for title, call in cases:
        call()
        p50, p95 = _percentiles(call, QUERIES)
        verdict = "ok" if p50 <= target_ms else "MISSED"
        print(
            f"event reads: {title}: p50 {p50:.2f} ms p95 {p95:.2f} ms"
            f" (target p50 <= {target_ms:g} ms: {verdict})"
        )


def main() -> None:
    """Build a SQLite store, time `newest()`, print the figures."""
    rng = random.Random(42)
    with tempfile.TemporaryDirectory(prefix="sfmesh-bench-events-") as folder:
        path = Path(folder) / "events.db"
        store = SqliteEventStore(path)
        objects, hot = fill(store, rng)
        size = sum(f.stat().st_size for f in Path(folder).iterdir()) / 2**20
        print(f"event reads: {size:,.0f} MiB on disk")
        store.close()
        began = time.perf_counter()
        store = SqliteEventStore(path)
        reopened = time.perf_counter() - began
        print(f"event reads: reopening it (with PRAGMA quick_check) took {reopened:.1f} s")
        time_reads(store, objects, hot, rng, target_ms=TARGET_P50_MS)
        store.close()


if __name__ == "__main__":
    main()
