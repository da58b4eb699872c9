"""Event ingest into a running eventlog: our batched stream against one call
per event, in one run.

- `stream_rate`: 3 producers, each in its own process (as services are), each
  an `EventEmitter` that emits its share of the events and then waits for
  `flushed()`.
- `unary_rate`: 3 producers in 3 processes, each a plain `Record` stream that
  carries ONE event per request and waits for its acknowledgement before
  sending the next: the closest our contract comes to Shaken Fist's one unary
  RPC per event, answered once stored.

Both sides build the same events (uuid4 id, wall-clock sequence, a small
`extra`). Producers connect and deliver one event first, then start together
at a barrier; the rate is all events over the span from the first start to the
last acknowledgement. The eventlog and the producers share the machine's
cores, so the ratio means more than the absolute figures.

    python -m bench.event_ingest --eventlog 127.0.0.1:13012 --state-dir /var/lib/sfmesh
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import grpc
from sfmesh.v1 import event_pb2, eventlog_service_pb2, eventlog_service_pb2_grpc

from services.common.config import STATE_DIR
from services.common.events import EventEmitter, next_sequence
from services.common.settings import environment_value
from services.common.tokens import Credentials, InternalCredentials, TokenAuthority
from services.common.transport import Transport

PRODUCERS = 3
STREAM_EVENTS = 30_000
UNARY_EVENTS = 3_000
DELIVERY_TIMEOUT = 600.0

Span = tuple[float, float]
"""When a producer started and when its last event was acknowledged (monotonic)."""
Producer = Callable[[str, str, int, Barrier, Any], None]


def stream_rate(
    address: str, *, service_key: str, producers: int = PRODUCERS, events: int = STREAM_EVENTS
) -> float:
    """Events per second through `producers` EventEmitters in as many processes."""
    return _rate(_stream_producer, address, service_key, producers, events)


def unary_rate(
    address: str, *, service_key: str, producers: int = PRODUCERS, events: int = UNARY_EVENTS
) -> float:
    """Events per second with one event per request, each awaited, from
    `producers` processes."""
    return _rate(_unary_producer, address, service_key, producers, events)


def _rate(producer: Producer, address: str, service_key: str, producers: int, events: int) -> float:
    context = multiprocessing.get_context("spawn")  # gRPC does not survive fork
    barrier = context.Barrier(producers)
    results = context.Queue()
    share = events // producers
    children = [
        context.Process(target=producer, args=(address, service_key, share, barrier, results))
        for _ in range(producers)
    ]
    for child in children:
        child.start()
    spans: list[Span] = [results.get(timeout=DELIVERY_TIMEOUT + 60) for _ in children]
    for child in children:
        child.join()
    began = min(span[0] for span in spans)
    ended = max(span[1] for span in spans)
    return share * producers / (ended - began)


def _credentials(service_key: str) -> Credentials:
    return InternalCredentials(TokenAuthority(internal_secret=service_key), "bench").metadata


def _record(producer_id: str, sequence: int, number: int) -> eventlog_service_pb2.EventRecord:
    record = eventlog_service_pb2.EventRecord(
        event_id=uuid.uuid4().hex,
        sequence=sequence,
        object_type="instance",
        object_uuid=producer_id,
        type=event_pb2.EVENT_TYPE_STATUS,
        timestamp=time.time(),
        fqdn=socket.getfqdn(),
        message="bench event",
    )
    record.extra.update({"number": number})
    return record


# The batched stream: one EventEmitter per process.


def _stream_producer(
    address: str, service_key: str, events: int, barrier: Barrier, results: Any
) -> None:
    results.put(asyncio.run(_emit_through_emitter(address, service_key, events, barrier)))


async def _emit_through_emitter(
    address: str, service_key: str, events: int, barrier: Barrier
) -> Span:
    object_uuid = str(uuid.uuid4())
    with tempfile.TemporaryDirectory(prefix="bench-spool-") as spool:
        emitter = EventEmitter(
            address=address,
            producer_id=f"bench-stream-{socket.gethostname()}-{os.getpid()}",
            spool_dir=Path(spool),
            fqdn=socket.getfqdn(),
            credentials=_credentials(service_key),
            transport=Transport(),
        )
        await emitter.start()
        emitter.emit("instance", object_uuid, event_pb2.EVENT_TYPE_STATUS, "warm-up")
        if not await emitter.flushed(30.0):
            raise RuntimeError(f"the eventlog at {address} does not acknowledge")
        await asyncio.to_thread(barrier.wait)
        began = time.monotonic()
        for number in range(events):
            emitter.emit(
                "instance",
                object_uuid,
                event_pb2.EVENT_TYPE_STATUS,
                "bench event",
                extra={"number": number},
            )
            if number % 100 == 99:
                await asyncio.sleep(0)  # a service does other work between events
        if not await emitter.flushed(DELIVERY_TIMEOUT):
            raise RuntimeError("events not acknowledged in time")
        ended = time.monotonic()
        await emitter.close()
    return began, ended


# One event per request, each awaited.


def _unary_producer(
    address: str, service_key: str, events: int, barrier: Barrier, results: Any
) -> None:
    results.put(asyncio.run(_send_one_by_one(address, service_key, events, barrier)))


async def _send_one_by_one(address: str, service_key: str, events: int, barrier: Barrier) -> Span:
    producer_id = f"bench-unary-{socket.gethostname()}-{os.getpid()}"
    sequence = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = eventlog_service_pb2_grpc.EventLogServiceStub(channel)
        metadata = _credentials(service_key)()
        call = stub.Record(metadata=metadata)

        async def one(number: int) -> None:
            nonlocal sequence
            sequence = next_sequence(sequence, time.time_ns())
            request = eventlog_service_pb2.RecordRequest(
                producer_id=producer_id, events=[_record(producer_id, sequence, number)]
            )
            await call.write(request)
            if await call.read() is grpc.aio.EOF:
                raise RuntimeError("the eventlog closed the stream")

        await one(-1)  # warm-up
        await asyncio.to_thread(barrier.wait)
        began = time.monotonic()
        for number in range(events):
            await one(number)
        ended = time.monotonic()
        await call.done_writing()
    return began, ended


def main(
    address: str | None = None,
    *,
    state_dir: Path | None = None,
    events: int = STREAM_EVENTS,
    unary_events: int = UNARY_EVENTS,
) -> None:
    """Measure both sides against the eventlog at `address` and print them."""
    if address is None:
        print(
            "event ingest: skipped, no eventlog address given. Start an eventlog and run\n"
            "  python -m bench.event_ingest --eventlog HOST:PORT --state-dir DIR\n"
            "(DIR holds the service.key the eventlog verifies internal tokens with)."
        )
        return
    key_path = (state_dir or Path(environment_value(STATE_DIR))) / "service.key"
    if not key_path.exists():
        print(f"event ingest: skipped, no {key_path} to sign internal tokens with.")
        return
    service_key = key_path.read_text().strip()
    stream = stream_rate(address, service_key=service_key, events=events)
    unary = unary_rate(address, service_key=service_key, events=unary_events)
    print(f"event ingest into {address}, {PRODUCERS} producer processes")
    print(f"  batched stream (EventEmitter)   {stream:>10,.0f} events/s  ({events:,} events)")
    print(f"  one event per call, awaited     {unary:>10,.0f} events/s  ({unary_events:,} events)")
    print(f"  stream / per-call               {stream / unary:>10.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.event_ingest")
    parser.add_argument("--eventlog", default=None, help="address of a running eventlog")
    parser.add_argument("--state-dir", type=Path, default=None, help="holds service.key")
    parser.add_argument("--events", type=int, default=STREAM_EVENTS)
    parser.add_argument("--unary-events", type=int, default=UNARY_EVENTS)
    arguments = parser.parse_args()
    main(
        arguments.eventlog,
        state_dir=arguments.state_dir,
        events=arguments.events,
        unary_events=arguments.unary_events,
    )
