"""The event emitter every service uses: `emit()` never blocks, and events
reach the eventlog over one long-lived `EventLogService.Record` stream per
process.

Flow. `emit` builds an `EventRecord`, serializes it once, appends the bytes to
the spool's buffer and hands them to the stream session
(`services/common/event_stream.py`), which batches them, keeps the in-flight
bookkeeping, reads the acks and reconnects with backoff; each acknowledgement
deletes the spool segments it covers. See that module for the stream's
contract with the eventlog.

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

Events built ahead. `batch()` builds events without emitting them (ids
chosen, times stamped), so that a writer can store them with its write (the
api's outbox) and emit them once the write has committed, with
`emit_record`, as often as it takes: the eventlog stores an id once.
`delivered` says when the eventlog has acknowledged them.

`emit` must be called from the event loop's thread (from a worker thread use
`loop.call_soon_threadsafe`).

Durability. `durable()` returns once every event emitted so far is on disk
and synced (or already acknowledged, and so never written): a group commit,
where the loop only swaps the spool's buffered records out, and one write
and one `fdatasync` of them, in a thread of the emitter's own so that a slow
disk never stalls the loop, carry the events of every caller waiting at that
moment; callers who arrive while it runs share the next one. `emit` asks the request being served
(if any) to await `durable()` before its answer leaves
(`interceptors.await_before_answer`), so every service built on
`server.serve` acknowledges nothing whose events a crash could lose, while
requests that emit nothing (reads) never wait. Events emitted outside a
request (a node agent's reconcilers) are committed every
`SPOOL_SYNC_INTERVAL`. What a crash can lose:

- the events of a request whose answer has left: nothing, whether the
  process or the machine crashed;
- events emitted outside requests: those of the last `SPOOL_SYNC_INTERVAL`;
- while the disk refuses the spool (full, failing) or does not sync it within
  `DURABLE_TIMEOUT` (hung): every event the eventlog has not acknowledged
  yet. Requests still answer, since their writes are already in etcd and
  failing them would misreport those; the emitter logs an error when the
  trouble starts and a warning when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast

import grpc
from sfmesh.v1 import event_pb2, eventlog_service_pb2

from services.common.channels import quick_reconnect
from services.common.event_metrics import EMITTED
from services.common.event_stream import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    EventStream,
)

# Re-exported: part of this module's API.
from services.common.event_stream import MAX_IN_FLIGHT as MAX_IN_FLIGHT
from services.common.event_stream import RECORD_METHOD as RECORD_METHOD
from services.common.event_stream import StreamEndedError as StreamEndedError
from services.common.event_stream import encode_record_request as encode_record_request
from services.common.interceptors import await_before_answer, request_id
from services.common.replicas import replica_channel
from services.common.spool import Entry, Spool
from services.common.tokens import Credentials
from services.common.tracing import trace_id
from services.common.transport import Transport

log = logging.getLogger("sfmesh.events")

SPOOL_SYNC_INTERVAL = 0.05
"""How often events emitted outside requests are committed to the spool."""

DURABLE_TIMEOUT = 2.0
"""The longest `durable()` waits for a commit. A hung disk (an `fdatasync`
that never returns) then costs each write request this much instead of its
answer: the write is already in etcd, and a gateway timeout would tell the
client it failed. The commit itself goes on, shared by whoever arrives."""

_CHANNEL_OPTIONS = quick_reconnect(BACKOFF_INITIAL, BACKOFF_MAX)


def next_sequence(last: int, now_ns: int) -> int:
    """The sequence of the next event: above the last one, and at least the
    wall clock in nanoseconds so that a restarted process continues upwards. Pure."""
    return max(last + 1, now_ns)


def jsonable(value: Any) -> Any:
    """`value` with everything a `Struct` cannot hold turned into a string. Pure."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return str(value)


def new_record(
    fqdn: str,
    object_type: str,
    object_uuid: str,
    event_type: int,
    message: str,
    extra: Mapping[str, Any] | None = None,
    duration: float | None = None,
) -> eventlog_service_pb2.EventRecord:
    """A new event: its id chosen now, stamped with the time and the request
    being served; its sequence is given when it is emitted."""
    details = dict(extra) if extra else {}
    rid = request_id()
    if rid:
        details.setdefault("request-id", rid)
    trace = trace_id()
    if trace:
        details.setdefault("trace-id", trace)
    record = eventlog_service_pb2.EventRecord(
        event_id=uuid.uuid4().hex,
        object_type=object_type,
        object_uuid=object_uuid,
        type=cast(event_pb2.EventType, event_type),
        timestamp=time.time(),
        fqdn=fqdn,
        message=message,
        duration=duration,
    )
    if details:
        record.extra.update(jsonable(details))
    return record


class EventSink(Protocol):
    """What code that records events needs of an `EventEmitter` (tests pass
    a recorder instead)."""

    def emit(
        self,
        object_type: str,
        object_uuid: str,
        event_type: int,
        message: str,
        *,
        extra: Mapping[str, Any] | None = None,
        duration: float | None = None,
    ) -> None: ...


class EventBatch:
    """An `EventSink` that only builds: its events, ids chosen, wait in
    `records` to be emitted later (`EventEmitter.emit_record`)."""

    def __init__(self, fqdn: str) -> None:
        self._fqdn = fqdn
        self.records: list[eventlog_service_pb2.EventRecord] = []

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
        """Build an event and keep it."""
        self.records.append(
            new_record(self._fqdn, object_type, object_uuid, event_type, message, extra, duration)
        )


class _Commit(NamedTuple):
    """What a group commit did."""

    through: int
    """It carried every event up to this sequence."""
    taken: bool
    """Whether the disk took it."""


class EventEmitter:
    """Emits a producer's events to the eventlog at `address`, or to any of
    several replicas (`a:p,b:p`, ``replicas.py``): each stream goes to one
    that serves, and a broken one is opened again on one that does. See the
    module docstring."""

    def __init__(
        self,
        *,
        address: str,
        producer_id: str,
        spool_dir: Path,
        fqdn: str,
        credentials: Credentials,
        transport: Transport,
        batch_max: int = 500,
        flush_interval: float = 0.005,
        spool_limit_bytes: int = 256 << 20,
        ack_timeout: float = 30.0,
    ) -> None:
        self._address = address
        self._transport = transport
        self._producer_id = producer_id
        self._fqdn = fqdn
        self._spool_limit = spool_limit_bytes
        # Segments small enough that hitting the limit drops a small share.
        self._spool = Spool(
            spool_dir, segment_bytes=max(64 << 10, min(4 << 20, spool_limit_bytes // 16))
        )
        self._stream = EventStream(
            producer_id=producer_id,
            spool=self._spool,
            credentials=credentials,
            batch_max=batch_max,
            flush_interval=flush_interval,
            ack_timeout=ack_timeout,
        )
        self._last_sequence = 0
        self._dropped_through = 0
        """The newest event dropped from a full spool, never delivered."""
        self._synced = 0
        """Every event up to this sequence is on disk and synced, or acknowledged."""
        self._committing: asyncio.Task[_Commit] | None = None
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="events-spool-sync")
        self._troubles = 0
        """Commits refused and waits given up since the disk last took a commit."""
        self._started = False
        self._closed = False
        self._channel: grpc.aio.Channel | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def unacknowledged(self) -> int:
        """How many emitted events the eventlog has not acknowledged."""
        return self._stream.pending

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
        in-memory work plus a buffered spool append. The request being served
        answers once the event is durable."""
        record = new_record(
            self._fqdn, object_type, object_uuid, event_type, message, extra, duration
        )
        self.emit_record(record)

    def batch(self) -> EventBatch:
        """Events to build now and emit later (`emit_record`)."""
        return EventBatch(self._fqdn)

    def emit_record(self, record: eventlog_service_pb2.EventRecord) -> int:
        """Record an event built earlier (`new_record`), keeping its id, so
        that emitting it again, from any process, stores it once: as `emit`,
        giving it this producer's next sequence. Answers that sequence (0 when
        the emitter is closed and the event dropped), for `delivered`."""
        if not self._started:
            raise RuntimeError("start the emitter before emitting")
        if self._closed:
            log.warning(
                "event emitted after close, dropped",
                extra={"fields": {"object_uuid": record.object_uuid, "event": record.message}},
            )
            return 0
        self._last_sequence = next_sequence(self._last_sequence, time.time_ns())
        record.sequence = self._last_sequence
        entry = Entry(self._last_sequence, record.SerializeToString())
        self._spool.append(entry)
        self._stream.add(entry)
        EMITTED.inc()
        await_before_answer(self.durable)
        if self._spool.size_bytes > self._spool_limit:
            self._trim()
        return self._last_sequence

    async def start(self) -> None:
        """Load the unacknowledged events from the spool and start sending."""
        if self._started:
            raise RuntimeError("the emitter is already started")
        loaded = self._spool.load()
        if loaded:
            self._stream.add_loaded(loaded)
            self._last_sequence = max(self._last_sequence, loaded[-1].sequence)
            self._synced = self._last_sequence  # read from disk, so on it
            log.info(
                "spooled events to replay",
                extra={"fields": {"events": len(loaded), "producer": self._producer_id}},
            )
        self._started = True
        # One stream carries every request's events: it belongs to no trace.
        self._channel = replica_channel(
            self._transport, self._address, role="eventlog", extra=_CHANNEL_OPTIONS, traced=False
        )
        self._tasks = [
            asyncio.create_task(self._stream.run(self._channel), name="events-sender"),
            asyncio.create_task(self._sync_forever(), name="events-spool-sync"),
        ]

    async def durable(self) -> None:
        """Return once every event emitted so far is on disk and synced, or
        acknowledged; see "Durability" in the module docstring. Never raises:
        when the disk refuses, or takes longer than `DURABLE_TIMEOUT`, that is
        logged and this returns."""
        target = self._last_sequence
        try:
            async with asyncio.timeout(DURABLE_TIMEOUT):
                while self._synced < target and not self._closed:
                    if self._committing is None:
                        self._committing = asyncio.create_task(self._commit(), name="events-commit")
                    # Shielded: a waiter giving up must not cancel the others' commit.
                    commit = await asyncio.shield(self._committing)
                    if not commit.taken and commit.through >= target:
                        return
        except TimeoutError:
            self._trouble(f"not synced within {DURABLE_TIMEOUT} s")

    async def delivered(self, sequence: int) -> bool:
        """Wait until the eventlog has acknowledged every event emitted up to
        `sequence` (`emit_record`'s answer); False when some of them may have
        been dropped from a full spool instead, or the emitter is closed (a
        wait that the close finds in progress ends only when cancelled)."""
        await self._stream.wait_settled(sequence)
        return sequence > self._dropped_through and not self._closed

    async def flushed(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bool, not an error
        """Wait until every emitted event is acknowledged; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._stream.wait_settled()
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
        if self._committing is not None:
            await self._committing
        self._syncer.shutdown()
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

    # The spool.

    async def _sync_forever(self) -> None:
        """Commit the events emitted outside requests."""
        while True:
            await asyncio.sleep(SPOOL_SYNC_INTERVAL)
            await self.durable()

    async def _commit(self) -> _Commit:
        """One group commit: take every event emitted so far out of the
        spool's buffers (those emitted in the same turn of the loop as the
        first waiter included), write and sync them off the event loop."""
        through = self._last_sequence
        flush = self._spool.take()
        try:
            if flush:
                await asyncio.get_running_loop().run_in_executor(self._syncer, flush.run)
        except OSError as exc:
            self._trouble(str(exc))
            return _Commit(through, taken=False)
        finally:
            self._spool.finish(flush)
            self._committing = None
        if self._troubles:
            log.warning(
                "the event spool is written again",
                extra={"fields": {"troubles": self._troubles}},
            )
            self._troubles = 0
        self._synced = max(self._synced, through)
        return _Commit(through, taken=True)

    def _trouble(self, error: str) -> None:
        """A commit refused or a wait given up: logged once per outage (until
        a commit succeeds again), counted always."""
        if not self._troubles:
            log.error(
                "cannot write the event spool: until it is written again, answered "
                "requests' events are only in memory, lost if this process dies "
                "before the eventlog has them",
                extra={"fields": {"error": error, "producer": self._producer_id}},
            )
        self._troubles += 1

    def _trim(self) -> None:
        """Keep the spool within its limit by dropping the oldest events."""
        dropped = self._spool.trim(self._spool_limit)
        if dropped is None:
            return
        self._dropped_through = dropped.last_sequence
        lost = self._stream.drop_through(dropped.last_sequence)
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
