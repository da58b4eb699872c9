"""The event emitter every service uses: `emit()` never blocks, and events
reach the eventlog over one long-lived `EventLogService.Record` stream per
process.

Flow. `emit` builds an `EventRecord`, serializes it once, appends the bytes to
the spool's buffer and to the in-memory queue, and wakes the sender. The
sender batches queued events (up to `batch_max`, or what accumulated within
`flush_interval`) into `RecordRequest`s in sequence order, keeping at most
`MAX_IN_FLIGHT` events sent but unacknowledged. A reader consumes the
`RecordResponse`s: each `committed_sequence` drops every event at or below it
from memory and deletes the spool segments it covers. On any stream failure
the sender reconnects with backoff (0.1 s doubling to 5 s) and re-sends every
unacknowledged event from the oldest; the eventlog ignores event ids it
already holds, so a replay never duplicates. A stream on which events wait
longer than `ack_timeout` for an ack is presumed dead and replaced.

What the eventlog must do: answer exactly one `RecordResponse` per
`RecordRequest`, in order, once that batch and every earlier one of the stream
are durable. The emitter reads the n-th answer as covering at most the n-th
batch, whatever number it carries: a `committed_sequence` above the batch's
last sequence (such as a producer's historic maximum) never makes it drop
events the eventlog has not stored yet.

Sequences are `max(last + 1, time.time_ns())` at emit time: strictly
increasing within a process, and increasing across restarts without writing a
counter to disk on every event, because a new process starts from the wall
clock in nanoseconds, which is past any sequence the previous process used
(it could only run ahead of the clock by emitting more than one event per
nanosecond). After loading the spool the emitter also continues from its
highest sequence, which covers a clock stepped backwards for the events still
unacknowledged. Sequences therefore have gaps: the eventlog must not expect
them to increase by one.

Disk and memory are bounded by `spool_limit_bytes`: memory holds the same
serialized events as the spool. When the spool grows past the limit (the
eventlog has been down a long time), its oldest segments are deleted and the
events in them dropped, with a warning giving the count. Losing the oldest
events is the trade-off for never filling the disk of a hypervisor, and the
newest events are the ones that explain the present state.

`emit` must be called from the event loop's thread (from a worker thread use
`loop.call_soon_threadsafe`). The spool is flushed on that thread every
`SPOOL_FLUSH_INTERVAL`; see `services/common/spool.py` for what a crash loses.
The stream has no deadline (it lives as long as the process); `ack_timeout`
is its liveness check instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import grpc
from sfmesh.v1 import event_pb2, eventlog_service_pb2

from services.common.channels import quick_reconnect
from services.common.interceptors import request_id
from services.common.spool import Entry, Spool

log = logging.getLogger("sfmesh.events")

RECORD_METHOD = "/sfmesh.v1.EventLogService/Record"
MAX_IN_FLIGHT = 20_000
"""Events sent but not yet acknowledged; beyond it the sender waits for acks."""
SPOOL_FLUSH_INTERVAL = 0.05
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0

_CHANNEL_OPTIONS = quick_reconnect(BACKOFF_INITIAL, BACKOFF_MAX)
_EVENTS_TAG = b"\x12"  # RecordRequest field 2 (events), length-delimited
_PRODUCER_TAG = b"\x0a"  # RecordRequest field 1 (producer_id), length-delimited


class StreamEndedError(Exception):
    """The ingest stream ended or stopped answering."""


def next_sequence(last: int, now_ns: int) -> int:
    """The sequence of the next event: above the last one, and at least the
    wall clock in nanoseconds so that a restarted process continues upwards. Pure."""
    return max(last + 1, now_ns)


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


def jsonable(value: Any) -> Any:
    """`value` with everything a `Struct` cannot hold turned into a string. Pure."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return str(value)


class EventEmitter:
    """Emits a producer's events to the eventlog; see the module docstring."""

    def __init__(
        self,
        *,
        address: str,
        producer_id: str,
        spool_dir: Path,
        fqdn: str,
        credentials: Callable[[], str],
        batch_max: int = 500,
        flush_interval: float = 0.005,
        spool_limit_bytes: int = 256 << 20,
        ack_timeout: float = 30.0,
    ) -> None:
        self._address = address
        self._producer_id = producer_id
        self._fqdn = fqdn
        self._credentials = credentials
        self._batch_max = batch_max
        self._flush_interval = flush_interval
        self._spool_limit = spool_limit_bytes
        self._ack_timeout = ack_timeout
        # Segments small enough that hitting the limit drops a small share.
        self._spool = Spool(
            spool_dir, segment_bytes=max(64 << 10, min(4 << 20, spool_limit_bytes // 16))
        )
        self._queued: deque[Entry] = deque()
        """Unacknowledged events not sent on the current stream, in order."""
        self._in_flight: deque[Entry] = deque()
        """Events sent on the current stream and not yet acknowledged, in order."""
        self._batch_ends: deque[int] = deque()
        """The last sequence of each batch sent on the current stream and not yet answered."""
        self._last_sequence = 0
        self._last_progress = 0.0
        self._acked = False
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._started = False
        self._closed = False
        self._channel: grpc.aio.Channel | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def unacknowledged(self) -> int:
        """How many emitted events the eventlog has not acknowledged."""
        return len(self._queued) + len(self._in_flight)

    def emit(
        self,
        object_type: str,
        object_uuid: str,
        event_type: int,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        duration: float | None = None,
    ) -> None:
        """Record an event. Never blocks and never raises on eventlog trouble:
        in-memory work plus a buffered spool append."""
        if not self._started:
            raise RuntimeError("start the emitter before emitting")
        if self._closed:
            log.warning(
                "event emitted after close, dropped",
                extra={"fields": {"object_uuid": object_uuid, "event": message}},
            )
            return
        details = dict(extra) if extra else {}
        rid = request_id()
        if rid:
            details.setdefault("request-id", rid)
        now_ns = time.time_ns()
        self._last_sequence = next_sequence(self._last_sequence, now_ns)
        record = eventlog_service_pb2.EventRecord(
            event_id=uuid.uuid4().hex,
            sequence=self._last_sequence,
            object_type=object_type,
            object_uuid=object_uuid,
            type=cast(event_pb2.EventType, event_type),
            timestamp=now_ns / 1e9,
            fqdn=self._fqdn,
            message=message,
            duration=duration,
        )
        if details:
            record.extra.update(jsonable(details))
        entry = Entry(self._last_sequence, record.SerializeToString())
        self._spool.append(entry)
        self._queued.append(entry)
        self._drained.clear()
        self._wake.set()
        if self._spool.size_bytes > self._spool_limit:
            self._trim()

    async def start(self) -> None:
        """Load the unacknowledged events from the spool and start sending."""
        if self._started:
            raise RuntimeError("the emitter is already started")
        loaded = self._spool.load()
        if loaded:
            self._queued.extend(loaded)
            self._last_sequence = max(self._last_sequence, loaded[-1].sequence)
            self._drained.clear()
            log.info(
                "spooled events to replay",
                extra={"fields": {"events": len(loaded), "producer": self._producer_id}},
            )
        self._started = True
        self._channel = grpc.aio.insecure_channel(self._address, options=_CHANNEL_OPTIONS)
        self._tasks = [
            asyncio.create_task(self._send_forever(self._channel), name="events-sender"),
            asyncio.create_task(self._flush_spool_forever(), name="events-spool-flush"),
        ]

    async def flushed(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bool, not an error
        """Wait until every emitted event is acknowledged; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._drained.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - stops either way
        """Try to deliver what is pending within `timeout`, then stop. What is
        still unacknowledged stays in the spool for the next process."""
        if self._closed or not self._started:
            self._closed = True
            return
        await self.flushed(timeout)
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._channel is not None:
            await self._channel.close()
        left = self.unacknowledged
        try:
            self._spool.close()
        except OSError as exc:
            log.warning("cannot write the event spool", extra={"fields": {"error": str(exc)}})
        if left:
            log.info(
                "unacknowledged events left in the spool",
                extra={"fields": {"events": left, "producer": self._producer_id}},
            )

    # The sender.

    async def _send_forever(self, channel: grpc.aio.Channel) -> None:
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
        self._queued.extendleft(reversed(self._in_flight))
        self._in_flight.clear()
        self._batch_ends.clear()
        metadata = (("authorization", f"Bearer {self._credentials()}"),)
        call = record(metadata=metadata)
        reader = asyncio.create_task(self._read_acks(call), name="events-acks")
        try:
            await self._send(call, reader)
        finally:
            call.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

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
        while self._in_flight and self._in_flight[0].sequence <= committed:
            self._in_flight.popleft()
        self._spool.acknowledge(committed)
        self._last_progress = asyncio.get_running_loop().time()
        self._acked = True
        if not self._in_flight and not self._queued:
            self._drained.set()
        self._wake.set()

    # The spool.

    async def _flush_spool_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(SPOOL_FLUSH_INTERVAL)
            try:
                self._spool.flush()
            except OSError as exc:
                if not failing:
                    log.warning(
                        "cannot write the event spool; events stay in memory",
                        extra={"fields": {"error": str(exc)}},
                    )
                failing = True
            else:
                failing = False

    def _trim(self) -> None:
        """Keep the spool within its limit by dropping the oldest events."""
        dropped = self._spool.trim(self._spool_limit)
        if dropped is None:
            return
        lost = 0
        for pending in (self._in_flight, self._queued):
            while pending and pending[0].sequence <= dropped.last_sequence:
                pending.popleft()
                lost += 1
        if not self._in_flight and not self._queued:
            self._drained.set()
        log.warning(
            "event spool full; dropped the oldest unacknowledged events",
            extra={
                "fields": {
                    "events": lost,
                    "limit_bytes": self._spool_limit,
                    "producer": self._producer_id,
                }
            },
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return repr(exc)
