"""The emitter's `EventLogService.Record` stream session: batching, in-flight
bookkeeping, reading acks, reconnecting with backoff.

Flow. The emitter hands each serialized event to `add`, which queues it and
wakes the sender. The sender batches queued events (up to `batch_max`, or what
accumulated within `flush_interval`) into `RecordRequest`s in sequence order,
keeping at most `MAX_IN_FLIGHT` events sent but unacknowledged. A reader
consumes the `RecordResponse`s: each `committed_sequence` drops every event at
or below it from memory and deletes the spool segments it covers. On any
stream failure the sender reconnects with backoff (0.1 s doubling to 5 s) and
re-sends every unacknowledged event from the oldest; the eventlog ignores
event ids it already holds, so a replay never duplicates. With several
eventlog replicas on one store the channel balances each new stream onto a
replica that serves, so a stream whose replica died moves to another within
the first backoff (a stream that was acknowledged starts again at 0.1 s),
and the replay lands there. A stream on which events wait longer than
`ack_timeout` for an ack is presumed dead and replaced (a replica lost
without a reset of the connection).

What the eventlog must do: answer exactly one `RecordResponse` per
`RecordRequest`, in order, once that batch and every earlier one of the stream
are durable. The emitter reads the n-th answer as covering at most the n-th
batch, whatever number it carries: a `committed_sequence` above the batch's
last sequence (such as a producer's historic maximum) never makes it drop
events the eventlog has not stored yet.

The stream has no deadline (it lives as long as the process); `ack_timeout`
is its liveness check instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence

import grpc
from sfmesh.v1 import eventlog_service_pb2

from services.common.event_metrics import REPLAYED, SPOOL_DEPTH
from services.common.spool import Entry, Spool
from services.common.tokens import Credentials

log = logging.getLogger("sfmesh.events")

RECORD_METHOD = "/sfmesh.v1.EventLogService/Record"
MAX_IN_FLIGHT = 20_000
"""Events sent but not yet acknowledged; beyond it the sender waits for acks."""
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0

_EVENTS_TAG = b"\x12"  # RecordRequest field 2 (events), length-delimited
_PRODUCER_TAG = b"\x0a"  # RecordRequest field 1 (producer_id), length-delimited


class StreamEndedError(Exception):
    """The ingest stream ended or stopped answering."""


def encode_record_request(producer_id: str, payloads: Sequence[bytes]) -> bytes:
    """A serialized `RecordRequest` made of already-serialized `EventRecord`s,
    byte for byte what `RecordRequest.SerializeToString()` gives, without
    parsing the events again. Pure."""
    producer = producer_id.encode()
    parts = [_PRODUCER_TAG, _varint(len(producer)), producer] if producer else []
    for payload in payloads:
        parts += (_EVENTS_TAG, _varint(len(payload)), payload)
    return b"".join(parts)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class EventStream:
    """The unacknowledged events of one producer and the `Record` stream that
    delivers them; see the module docstring."""

    def __init__(
        self,
        *,
        producer_id: str,
        spool: Spool,
        credentials: Credentials,
        batch_max: int,
        flush_interval: float,
        ack_timeout: float,
    ) -> None:
        self._producer_id = producer_id
        self._spool = spool
        self._credentials = credentials
        self._batch_max = batch_max
        self._flush_interval = flush_interval
        self._ack_timeout = ack_timeout
        self._queued: deque[Entry] = deque()
        """Unacknowledged events not sent on the current stream, in order."""
        self._in_flight: deque[Entry] = deque()
        """Events sent on the current stream and not yet acknowledged, in order."""
        self._batch_ends: deque[int] = deque()
        """The last sequence of each batch sent on the current stream and not yet answered."""
        self._last_progress = 0.0
        self._acked = False
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        """Set, and replaced by a new one, whenever events stop being pending."""

    @property
    def pending(self) -> int:
        """How many events the eventlog has not acknowledged."""
        return len(self._queued) + len(self._in_flight)

    def add(self, entry: Entry) -> None:
        """Queue a new event and wake the sender."""
        self._queued.append(entry)
        SPOOL_DEPTH.inc()
        self._wake.set()

    def add_loaded(self, entries: Sequence[Entry]) -> None:
        """Queue the events loaded from the spool, before `run`."""
        self._queued.extend(entries)
        SPOOL_DEPTH.inc(len(entries))
        REPLAYED.inc(len(entries))

    async def wait_settled(self, sequence: int | None = None) -> None:
        """Return once every event added up to `sequence` (every one, when
        None) is acknowledged or dropped."""
        while (oldest := self._oldest()) is not None and (sequence is None or oldest <= sequence):
            await self._settled.wait()

    def _oldest(self) -> int | None:
        """The oldest pending event's sequence: in flight ones precede queued ones."""
        pending = self._in_flight or self._queued
        return pending[0].sequence if pending else None

    def _progress(self) -> None:
        """Wake those waiting for events to settle."""
        self._settled.set()
        self._settled = asyncio.Event()

    def drop_through(self, sequence: int) -> int:
        """Forget the unacknowledged events up to `sequence`; how many."""
        lost = 0
        for pending in (self._in_flight, self._queued):
            while pending and pending[0].sequence <= sequence:
                pending.popleft()
                lost += 1
        SPOOL_DEPTH.dec(lost)
        self._progress()
        return lost

    async def run(self, channel: grpc.aio.Channel) -> None:
        """Send forever over `channel`, reconnecting with backoff."""
        record = channel.stream_stream(
            RECORD_METHOD,
            request_serializer=None,  # requests are already bytes
            response_deserializer=eventlog_service_pb2.RecordResponse.FromString,
        )
        loop = asyncio.get_running_loop()
        backoff = BACKOFF_INITIAL
        failures = 0
        while True:
            self._acked = False
            began = loop.time()
            reason = "the stream ended"
            try:
                await self._stream(record)
            except Exception as exc:
                reason = _describe(exc)
            if self._acked or loop.time() - began >= BACKOFF_MAX:
                backoff, failures = BACKOFF_INITIAL, 0  # it was a healthy stream
            failures += 1
            log.log(
                logging.WARNING if failures == 1 else logging.DEBUG,
                "event stream failed; reconnecting",
                extra={"fields": {"error": reason, "retry_in": backoff, "failures": failures}},
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _stream(self, record: grpc.aio.StreamStreamMultiCallable) -> None:
        """One stream: replay from the oldest unacknowledged event, then send
        as events come, until the stream fails."""
        REPLAYED.inc(len(self._in_flight))
        self._queued.extendleft(reversed(self._in_flight))
        self._in_flight.clear()
        self._batch_ends.clear()
        call = record(metadata=self._credentials())
        reader = asyncio.create_task(self._read_acks(call), name="events-acks")
        try:
            await self._send(call, reader)
        finally:
            call.cancel()
            reader.cancel()
            # Wait for the reader without taking on its end: its error was
            # raised by `_send` already, and a stop of this task arriving
            # meanwhile must still stop it (`await reader` inside a
            # suppress(CancelledError) swallowed it, and the sender went on).
            await asyncio.wait([reader])
            if not reader.cancelled():
                reader.exception()  # retrieved, so asyncio does not report it again

    async def _send(self, call: grpc.aio.StreamStreamCall, reader: asyncio.Task[None]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if reader.done():
                reader.result()  # raises the stream's error, if any
                raise StreamEndedError("the eventlog closed the stream")
            if self._in_flight and loop.time() - self._last_progress >= self._ack_timeout:
                raise StreamEndedError(f"no acknowledgement for {self._ack_timeout} s")
            if self._queued and len(self._in_flight) < MAX_IN_FLIGHT:
                if len(self._queued) < self._batch_max and self._flush_interval > 0:
                    await asyncio.sleep(self._flush_interval)  # let a batch accumulate
                while self._queued and len(self._in_flight) < MAX_IN_FLIGHT and not reader.done():
                    await call.write(self._next_batch(loop.time()))
                continue
            self._wake.clear()
            deadline = self._last_progress + self._ack_timeout if self._in_flight else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()

    def _next_batch(self, now: float) -> bytes:
        """Move the next batch from the queue to in-flight; its request bytes."""
        size = min(self._batch_max, len(self._queued), MAX_IN_FLIGHT - len(self._in_flight))
        batch = [self._queued.popleft() for _ in range(size)]
        if not self._in_flight:
            self._last_progress = now
        self._in_flight.extend(batch)
        self._batch_ends.append(batch[-1].sequence)
        return encode_record_request(self._producer_id, [entry.payload for entry in batch])

    async def _read_acks(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                self._acknowledge(response.committed_sequence)
        finally:
            self._wake.set()  # the sender notices the stream is over

    def _acknowledge(self, committed: int) -> None:
        """One answer: it covers at most the oldest unanswered batch."""
        if not self._batch_ends:
            return  # more answers than batches: nothing it can vouch for
        committed = min(committed, self._batch_ends.popleft())
        acknowledged = 0
        while self._in_flight and self._in_flight[0].sequence <= committed:
            self._in_flight.popleft()
            acknowledged += 1
        SPOOL_DEPTH.dec(acknowledged)
        self._spool.acknowledge(committed)
        self._last_progress = asyncio.get_running_loop().time()
        self._acked = True
        self._progress()
        self._wake.set()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return repr(exc)
