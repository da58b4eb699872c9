"""The outbox: the events of a write that creates or ends an instance travel
in the write's own etcd transaction, so no crash can keep the write and lose
them.

The gap it closes. Events reach the eventlog through the process's emitter,
and a request answers only once its events are synced in the spool
(`services/common/events.py`). A process killed after its etcd commit but
before that sync kept the write and lost its events, and nothing wrote them
later: a client retrying the create with its `Idempotency-Key` gets the
instance the first attempt made, and no events. A spool synced on a host
that is then lost whole loses them too.

How. The writer builds the events before the transaction (`Outbox.hold`),
which fixes their event ids, and puts them at `/sfmesh/v1/outbox/<uuid>`
(`Held.entry`, a `RecordRequest` of them: the batch still to send) in the same
transaction as the write. Once it committed, `Outbox.send` emits exactly
those events, and removes the entry once the eventlog has acknowledged them
(`EventEmitter.delivered`): acknowledged, not merely spooled, so that a host
lost with its spool loses nothing either. The request still answers once
its events are durable in the spool, as every request does. An entry older
than `GRACE` (its events' time stamps) belongs to a writer that died or
cannot reach the eventlog: every api replica's sweep (`Outbox.run`) emits
its events again, waits for their acknowledgement, and removes it with a
compare on the revision it read.

Why this is safe to repeat. The eventlog stores an event id once (UNIQUE in
both stores), so the writer, a restarted writer replaying its spool, and
any number of sweeping replicas may emit the same entry: each event is
stored exactly once. A replica sweeps no entry it is delivering itself, so
an eventlog outage does not make it spool the same events round after
round. A sweep that fails (etcd unreachable) is tried again the next round.

Why only these writes. Many events belong to no etcd write (refusals,
placements, what node agents see), and an entry costs the write a bigger
transaction and one more (the removal). Creates and deletes are the writes
whose history matters most and which are few beside reads and metadata;
every other write keeps the spool's promise alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence

from sfmesh.v1 import eventlog_service_pb2

from services.api.clients.events import Recorder
from services.common import errors
from services.common.events import EventBatch, EventEmitter
from services.common.store import Delete, Put, Store, key, kind_prefix

log = logging.getLogger("sfmesh.api.outbox")

KIND = "outbox"
GRACE = 30.0
"""Seconds an entry is left to its writer before sweeps deliver it."""
SWEEP_INTERVAL = 10.0
"""Seconds between two sweeps of a replica."""

EventRecord = eventlog_service_pb2.EventRecord


def written_at(records: Sequence[EventRecord]) -> float:
    """When an entry's events were built, the oldest's time stamp (0 for
    none): its writer committed it soon after. Pure."""
    return min((record.timestamp for record in records), default=0.0)


def due(records: Sequence[EventRecord], now: float, older_than: float) -> bool:
    """Whether a sweep delivers an entry with these events now. Pure."""
    return now - written_at(records) >= older_than


class Held:
    """The events of one write, recorded on `events` before it commits."""

    def __init__(self, at: bytes, batch: EventBatch) -> None:
        self.key = at
        """Where its outbox entry lives."""
        self.batch = batch
        """The events built so far, their ids chosen."""
        self.events = Recorder(batch)
        """Records the api's kinds of events into `batch`."""

    def entry(self) -> Put:
        """The write of the outbox entry, create-only, for the write's transaction."""
        value = eventlog_service_pb2.RecordRequest(events=self.batch.records)
        return Put(self.key, value.SerializeToString(), 0)


class Outbox:
    """Outbox entries: written with their writes, delivered after, swept."""

    def __init__(self, store: Store, emitter: EventEmitter) -> None:
        self._store = store
        self._emitter = emitter
        self._busy: set[bytes] = set()
        """Entries this process is delivering."""
        self._tasks: set[asyncio.Task[None]] = set()

    def hold(self) -> Held:
        """A new entry to record a write's events on."""
        return Held(key(KIND, uuid.uuid4().hex), self._emitter.batch())

    def send(self, held: Held) -> None:
        """After the write with `held.entry()` committed: emit its events (the
        request being served answers once they are durable), and remove the
        entry once the eventlog has them. Never blocks."""
        self._deliver(held.key, held.batch.records, None)

    async def sweep(self, older_than: float) -> int:
        """Deliver every entry written at least `older_than` seconds ago that
        this process is not delivering already, and remove each once the
        eventlog has its events; how many entries it delivered."""
        now = time.time()
        delivering = []
        async for item in self._store.list_prefix(kind_prefix(KIND)):
            records = eventlog_service_pb2.RecordRequest.FromString(item.value).events
            if item.key not in self._busy and due(records, now, older_than):
                delivering.append(self._deliver(item.key, records, item.mod_revision))
        await asyncio.gather(*delivering)
        return len(delivering)

    async def run(self) -> None:
        """Sweep every `SWEEP_INTERVAL` until cancelled, then stop the
        removals in progress (their entries wait for the next sweeper)."""
        try:
            while True:
                try:
                    await self.sweep(GRACE)
                except errors.Unavailable:
                    log.warning("etcd is unavailable; the outbox is swept again later")
                await asyncio.sleep(SWEEP_INTERVAL)
        finally:
            for task in list(self._tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _deliver(
        self, at: bytes, records: Sequence[EventRecord], mod_revision: int | None
    ) -> asyncio.Task[None]:
        """Emit an entry's events with their ids now, and remove it once the
        eventlog has them (the task answered); busy until then."""
        self._busy.add(at)
        last = 0
        for record in records:
            last = self._emitter.emit_record(record)
        task = asyncio.create_task(self._remove(at, last, mod_revision), name="outbox-remove")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _remove(self, at: bytes, last: int, mod_revision: int | None) -> None:
        """Remove an entry once the events emitted up to `last` are in the
        eventlog (compared on `mod_revision` when known); an entry whose
        events may be lost, or that etcd did not let go, stays for a sweep."""
        try:
            if await self._emitter.delivered(last):
                await self._store.commit([Delete(at, mod_revision)])
        except errors.Unavailable:
            log.warning("etcd is unavailable; an outbox entry stays for a sweep")
        finally:
            self._busy.discard(at)
