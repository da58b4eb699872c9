"""services/common/events.py against a real grpc.aio server on loopback.

The server is a small recording implementation of the `EventLogService.Record`
contract, kept here because the real eventlog servicer is written apart: it
stores events by event id (so replays collapse), acknowledges the highest
sequence of each batch after storing it, checks the bearer token, and can be
told to break streams."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from sfmesh.v1 import event_pb2, eventlog_service_pb2, eventlog_service_pb2_grpc

from services.common.events import (
    EventEmitter,
    encode_record_request,
    jsonable,
    next_sequence,
)
from services.common.interceptors import _request_id
from services.common.spool import SUFFIX
from services.common.tokens import Metadata
from services.common.transport import Transport
from tests.metric_samples import sample

TOKEN = "test-token"
BEARER = (("authorization", f"Bearer {TOKEN}"),)
PRODUCER = "test-producer"
EventRecord = eventlog_service_pb2.EventRecord
RecordRequest = eventlog_service_pb2.RecordRequest
RecordResponse = eventlog_service_pb2.RecordResponse


class Recorder(eventlog_service_pb2_grpc.EventLogServiceServicer):
    """Collects events by id; acks the max sequence of each batch once stored."""

    def __init__(self) -> None:
        self.events: dict[str, EventRecord] = {}
        self.order: list[int] = []
        """Sequences as received, replays included."""
        self.streams = 0
        self.abort_after: int | None = None
        """Abort the next stream once it has brought this many events."""
        self.silent_streams = 0
        """This many next streams store events but never acknowledge."""
        self.ack_with: int | None = None
        """Answer this instead of the batch's max sequence (a historic maximum)."""
        self.hang_after: int | None = None
        """Answer this many batches of the next stream, then store one more and
        neither answer nor read on (a stuck server)."""
        self.hung = asyncio.Event()

    async def Record(
        self,
        request_iterator: AsyncIterator[eventlog_service_pb2.RecordRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[eventlog_service_pb2.RecordResponse]:
        if dict(context.invocation_metadata() or ()).get("authorization") != f"Bearer {TOKEN}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        self.streams += 1
        silent = self.silent_streams > 0
        self.silent_streams -= 1 if silent else 0
        brought = 0
        hang_after, self.hang_after = self.hang_after, None
        async for request in request_iterator:
            assert request.producer_id == PRODUCER
            for event in request.events:
                self.events.setdefault(event.event_id, event)
                self.order.append(event.sequence)
            brought += len(request.events)
            if hang_after is not None:
                if hang_after == 0:
                    self.hung.set()
                    await asyncio.Event().wait()  # until the server stops
                hang_after -= 1
            if self.abort_after is not None and brought >= self.abort_after:
                self.abort_after = None
                await context.abort(grpc.StatusCode.UNAVAILABLE, "going away mid-burst")
            if not silent:
                highest = max(event.sequence for event in request.events)
                yield RecordResponse(committed_sequence=self.ack_with or highest)

    def messages(self) -> list[str]:
        return sorted((event.message for event in self.events.values()), key=int)


class Eventlog:
    """The recording server on a fixed loopback port, stoppable and restartable."""

    def __init__(self, port: int, recorder: Recorder) -> None:
        self.port = port
        self.recorder = recorder
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        eventlog_service_pb2_grpc.add_EventLogServiceServicer_to_server(self.recorder, server)
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def eventlog() -> AsyncIterator[Eventlog]:
    """A recording eventlog on a free port, not started yet."""
    server = Eventlog(free_port(), Recorder())
    yield server
    await server.stop()


Factory = Callable[..., EventEmitter]


@pytest.fixture
async def emitters(tmp_path: Path, eventlog: Eventlog) -> AsyncIterator[Factory]:
    """Makes emitters aimed at `eventlog`; closes them all at the end."""
    made: list[EventEmitter] = []

    def make(spool_dir: Path | None = None, **options: Any) -> EventEmitter:
        options.setdefault("credentials", lambda: BEARER)
        emitter = EventEmitter(
            address=f"127.0.0.1:{eventlog.port}",
            producer_id=PRODUCER,
            spool_dir=spool_dir or tmp_path / "spool",
            fqdn="host.example",
            transport=Transport(),
            **options,
        )
        made.append(emitter)
        return emitter

    yield make
    for emitter in made:
        await emitter.close(timeout=0)


async def emit_burst(emitter: EventEmitter, first: int, count: int, chunk: int = 50) -> None:
    """Emit `count` events whose messages are their numbers, yielding to the
    loop every `chunk` like a busy service would."""
    object_uuid = str(uuid.uuid4())
    for number in range(first, first + count):
        emitter.emit("instance", object_uuid, event_pb2.EVENT_TYPE_STATUS, str(number))
        if number % chunk == 0:
            await asyncio.sleep(0)


def numbers(first: int, count: int) -> list[str]:
    return [str(number) for number in range(first, first + count)]


# The pure helpers.


def test_request_framing_matches_protobuf() -> None:
    records = [
        EventRecord(event_id=uuid.uuid4().hex, sequence=time.time_ns() + i, message="x" * i)
        for i in (0, 1, 200, 20_000)
    ]
    payloads = [record.SerializeToString() for record in records]
    for producer in (PRODUCER, "", "é" * 100):
        expected = RecordRequest(producer_id=producer, events=records).SerializeToString()
        assert encode_record_request(producer, payloads) == expected


def test_sequences() -> None:
    assert next_sequence(0, 1_000) == 1_000
    assert next_sequence(5_000, 1_000) == 5_001  # the clock never takes it backwards


def test_jsonable() -> None:
    value = uuid.uuid4()
    assert jsonable({"a": (1, value), 2: None}) == {"a": [1, str(value)], "2": None}


# Against the recording server.


async def test_thousand_events_arrive_once_in_order(
    eventlog: Eventlog, emitters: Factory, tmp_path: Path
) -> None:
    await eventlog.start()
    emitter = emitters()
    await emitter.start()
    started_ns = time.time_ns()
    await emit_burst(emitter, 0, 1000)
    assert await emitter.flushed(5.0)
    recorder = eventlog.recorder
    assert recorder.messages() == numbers(0, 1000)
    assert len(recorder.order) == 1000  # nothing sent twice
    assert recorder.order == sorted(recorder.order)
    assert recorder.order[0] >= started_ns
    event = next(iter(recorder.events.values()))
    assert (event.object_type, event.fqdn, event.type) == (
        "instance",
        "host.example",
        event_pb2.EVENT_TYPE_STATUS,
    )
    assert not event.HasField("duration")
    assert abs(event.timestamp - time.time()) < 5
    assert emitter.unacknowledged == 0
    await asyncio.sleep(0.1)  # a spool flush: nothing acknowledged is written or kept
    assert not list((tmp_path / "spool").glob(f"*{SUFFIX}"))


async def test_emit_never_blocks_while_eventlog_is_down(emitters: Factory) -> None:
    emitter = emitters()
    await emitter.start()
    began = time.perf_counter()
    await emit_burst(emitter, 0, 10_000)
    assert time.perf_counter() - began < 0.5
    assert emitter.unacknowledged == 10_000
    assert not await emitter.flushed(0.05)


async def test_events_wait_for_eventlog_to_start(eventlog: Eventlog, emitters: Factory) -> None:
    emitter = emitters()
    await emitter.start()
    await emit_burst(emitter, 0, 200)
    assert not await emitter.flushed(0.3)  # a few failed connects
    await eventlog.start()
    assert await emitter.flushed(5.0)
    assert eventlog.recorder.messages() == numbers(0, 200)


async def test_stream_aborted_mid_burst(eventlog: Eventlog, emitters: Factory) -> None:
    tokens = 0

    def credentials() -> Metadata:
        nonlocal tokens
        tokens += 1
        return BEARER

    eventlog.recorder.abort_after = 300
    await eventlog.start()
    emitter = emitters(credentials=credentials, batch_max=100)
    await emitter.start()
    await emit_burst(emitter, 0, 2000)
    assert await emitter.flushed(5.0)
    assert eventlog.recorder.messages() == numbers(0, 2000)
    assert eventlog.recorder.streams == 2
    assert tokens == 2  # a fresh token per connect


async def test_eventlog_restarts_mid_burst(eventlog: Eventlog, emitters: Factory) -> None:
    eventlog.recorder.hang_after = 0
    await eventlog.start()
    emitter = emitters(batch_max=50)
    await emitter.start()
    await emit_burst(emitter, 0, 1000)
    async with asyncio.timeout(5.0):
        await eventlog.recorder.hung.wait()
    assert len(eventlog.recorder.events) == 50  # one batch stored, not acknowledged
    await eventlog.stop()
    await emit_burst(emitter, 1000, 1000)
    await asyncio.sleep(0.1)
    await eventlog.start()
    assert await emitter.flushed(5.0)
    assert eventlog.recorder.messages() == numbers(0, 2000)


async def test_an_answer_vouches_only_for_its_batch(eventlog: Eventlog, emitters: Factory) -> None:
    recorder = eventlog.recorder
    recorder.ack_with = 2**64 - 1  # say, the producer's maximum from before a clock step
    recorder.hang_after = 1  # answer the first batch, store the second, then stall
    await eventlog.start()
    emitter = emitters(batch_max=100)
    await emitter.start()
    await emit_burst(emitter, 0, 300, chunk=1000)
    async with asyncio.timeout(5.0):
        await recorder.hung.wait()
    await asyncio.sleep(0.05)
    assert emitter.unacknowledged == 200  # not dropped on the strength of a big number

    await eventlog.stop()  # the second batch was stored, the third never arrived
    recorder.ack_with = None
    await eventlog.start()
    assert await emitter.flushed(5.0)
    assert recorder.messages() == numbers(0, 300)


async def test_stream_that_stops_acking_is_replaced(eventlog: Eventlog, emitters: Factory) -> None:
    eventlog.recorder.silent_streams = 1
    await eventlog.start()
    emitter = emitters(ack_timeout=0.3)
    await emitter.start()
    await emit_burst(emitter, 0, 100)
    assert await emitter.flushed(5.0)
    assert eventlog.recorder.streams == 2
    assert eventlog.recorder.messages() == numbers(0, 100)


async def test_unacknowledged_events_survive_a_restart(
    eventlog: Eventlog, emitters: Factory, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "restart"
    first = emitters(spool_dir)
    await first.start()
    await emit_burst(first, 0, 500)
    await first.close(timeout=0.2)
    assert list(spool_dir.glob(f"*{SUFFIX}"))

    await eventlog.start()
    second = emitters(spool_dir)
    await second.start()
    assert second.unacknowledged == 500
    second.emit("instance", "u", event_pb2.EVENT_TYPE_AUDIT, "500")
    assert await second.flushed(5.0)
    recorder = eventlog.recorder
    assert recorder.messages() == numbers(0, 501)
    assert recorder.order == sorted(recorder.order)  # the new process continued upwards
    assert not list(spool_dir.glob(f"*{SUFFIX}"))


async def test_request_id_and_details(eventlog: Eventlog, emitters: Factory) -> None:
    await eventlog.start()
    emitter = emitters()
    await emitter.start()
    reset = _request_id.set("req-42")
    try:
        emitter.emit(
            "instance",
            "u1",
            event_pb2.EVENT_TYPE_AUDIT,
            "0",
            extra={"cpus": 2, "tags": ["a", 1.5], "owner": uuid.UUID(int=1)},
            duration=1.25,
        )
    finally:
        _request_id.reset(reset)
    emitter.emit("instance", "u1", event_pb2.EVENT_TYPE_AUDIT, "1")
    assert await emitter.flushed(5.0)
    by_message = {event.message: event for event in eventlog.recorder.events.values()}
    with_id = by_message["0"]
    assert dict(with_id.extra) == {
        "request-id": "req-42",
        "cpus": 2,
        "tags": ["a", 1.5],
        "owner": str(uuid.UUID(int=1)),
    }
    assert with_id.HasField("duration")
    assert with_id.duration == 1.25
    assert "request-id" not in by_message["1"].extra


async def test_full_spool_drops_the_oldest(
    eventlog: Eventlog, emitters: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_dir = tmp_path / "small"
    limit = 256 << 10
    emitter = emitters(spool_dir, spool_limit_bytes=limit)
    await emitter.start()
    with caplog.at_level(logging.WARNING, logger="sfmesh.events"):
        await emit_burst(emitter, 0, 5000)
    dropped = [record for record in caplog.records if "spool full" in record.getMessage()]
    assert dropped
    lost = sum(record.fields["events"] for record in dropped)  # type: ignore[attr-defined]
    assert lost > 0
    assert emitter.unacknowledged == 5000 - lost
    await asyncio.sleep(0.1)  # a spool flush
    assert sum(path.stat().st_size for path in spool_dir.glob(f"*{SUFFIX}")) <= limit

    await eventlog.start()
    assert await emitter.flushed(5.0)
    assert eventlog.recorder.messages() == numbers(lost, 5000 - lost)  # the newest survive


async def test_emit_outside_start_and_close(emitters: Factory) -> None:
    emitter = emitters()
    with pytest.raises(RuntimeError):
        emitter.emit("instance", "u", event_pb2.EVENT_TYPE_AUDIT, "early")
    await emitter.start()
    await emitter.close(timeout=0)
    emitter.emit("instance", "u", event_pb2.EVENT_TYPE_AUDIT, "late")  # dropped, no raise


async def test_events_built_ahead_keep_their_ids_and_report_delivery(
    eventlog: Eventlog, emitters: Factory, tmp_path: Path
) -> None:
    emitter = emitters()
    await emitter.start()
    batch = emitter.batch()
    batch.emit("instance", "u", event_pb2.EVENT_TYPE_AUDIT, "built", extra={"k": 1})
    (record,) = batch.records
    assert record.event_id and record.sequence == 0 and record.fqdn == "host.example"
    assert emitter.unacknowledged == 0  # built, not emitted

    sequence = emitter.emit_record(record)
    delivered = asyncio.create_task(emitter.delivered(sequence))
    await asyncio.sleep(0.3)
    assert not delivered.done()  # no eventlog yet: nothing acknowledged
    await eventlog.start()
    assert await asyncio.wait_for(delivered, 5)
    assert eventlog.recorder.events[record.event_id].message == "built"

    # Emitted again by another process, as an outbox sweep does: the same id.
    other = emitters(tmp_path / "other")
    await other.start()
    again = eventlog_service_pb2.EventRecord.FromString(record.SerializeToString())
    assert await asyncio.wait_for(other.delivered(other.emit_record(again)), 5)
    assert list(eventlog.recorder.events) == [record.event_id]


async def test_delivered_is_false_for_events_dropped_from_a_full_spool(
    emitters: Factory, tmp_path: Path
) -> None:
    emitter = emitters(tmp_path / "small", spool_limit_bytes=256 << 10)
    await emitter.start()
    batch = emitter.batch()
    batch.emit("instance", "u", event_pb2.EVENT_TYPE_AUDIT, "first")
    first = emitter.emit_record(batch.records[0])
    await emit_burst(emitter, 0, 5000)  # no eventlog: the oldest are dropped
    assert not await asyncio.wait_for(emitter.delivered(first), 5)


# The metrics (`services/common/event_metrics.py`).


async def test_spool_depth_follows_emits_and_acknowledgements(
    eventlog: Eventlog, emitters: Factory
) -> None:
    emitted, depth = sample("sfmesh_events_emitted_total"), sample("sfmesh_events_spool_depth")
    emitter = emitters()
    await emitter.start()
    await emit_burst(emitter, 0, 30)
    assert sample("sfmesh_events_emitted_total") == emitted + 30
    assert sample("sfmesh_events_spool_depth") == depth + 30  # no eventlog yet
    await eventlog.start()
    assert await emitter.flushed(5.0)
    assert sample("sfmesh_events_spool_depth") == depth


async def test_events_dropped_from_a_full_spool_leave_its_depth(
    emitters: Factory, tmp_path: Path
) -> None:
    depth = sample("sfmesh_events_spool_depth")
    emitter = emitters(tmp_path / "small", spool_limit_bytes=256 << 10)
    await emitter.start()
    await emit_burst(emitter, 0, 5000)
    assert 0 < emitter.unacknowledged < 5000
    assert sample("sfmesh_events_spool_depth") == depth + emitter.unacknowledged


async def test_events_loaded_from_the_spool_are_replayed(
    eventlog: Eventlog, emitters: Factory, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "replay"
    first = emitters(spool_dir)
    await first.start()
    await emit_burst(first, 0, 20)
    await first.close(timeout=0.2)
    replayed = sample("sfmesh_events_replayed_total")
    await emitters(spool_dir).start()
    assert sample("sfmesh_events_replayed_total") == replayed + 20


async def test_events_unacknowledged_on_a_broken_stream_are_replayed(
    eventlog: Eventlog, emitters: Factory
) -> None:
    eventlog.recorder.silent_streams = 1
    await eventlog.start()
    replayed = sample("sfmesh_events_replayed_total")
    emitter = emitters(ack_timeout=0.3)
    await emitter.start()
    await emit_burst(emitter, 0, 40)
    assert await emitter.flushed(5.0)
    assert sample("sfmesh_events_replayed_total") == replayed + 40
