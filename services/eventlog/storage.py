"""The eventlog's storage interface: what the servicer asks of a durable event store.

The servicer is written against `EventStore`; `sqlite_store.SqliteEventStore` is the
embedded default, `postgres_store.PostgresEventStore` a store several replicas share
(`stores.open_store` picks one). Cursors are integers that only ever grow across the
whole store, and become visible in that order, so a watch resumes after the last cursor
it delivered and never sees an event twice nor misses one, even after older events were
pruned.

Threading: `append` and `prune` come from one writer thread; reads (`newest`, `after`,
`since`, `last_cursor`, `committed_sequence`) may come from any thread, concurrently
with the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sfmesh.v1 import event_pb2, eventlog_service_pb2


@dataclass(frozen=True)
class StoredEvent:
    """One stored event and where it sits in the store."""

    cursor: int
    """Strictly increasing across the whole store (SQLite's rowid, PostgreSQL's identity);
    never reused."""
    event: event_pb2.Event
    """The event as clients see it: type, timestamp, fqdn, duration, message, extra."""


@dataclass(frozen=True)
class PruneNote:
    """What one prune removed from one object's history, for one event type."""

    object_type: str
    """The object's type, e.g. "instance"."""
    object_uuid: str
    """The object's UUID."""
    event_type: int
    """The `event_pb2.EventType` whose expired events were deleted."""
    count: int
    """How many events were deleted."""
    before: float
    """The cut-off, epoch seconds: every event of this type older than it is gone."""


class EventStore(Protocol):
    """Durable event storage. Methods are synchronous; the servicer calls them
    from one writer thread (append, prune) and any thread (reads)."""

    def append(self, producer_id: str, records: Sequence[eventlog_service_pb2.EventRecord]) -> int:
        """Store a batch durably in ONE transaction, skipping any record whose
        event_id is already stored (a replay never duplicates), and record the
        producer's highest sequence in the same transaction. Returns the
        producer's committed sequence after the batch (max of stored value and
        the batch's sequences)."""
        ...

    def append_batches(
        self, batches: Sequence[tuple[str, Sequence[eventlog_service_pb2.EventRecord]]]
    ) -> list[int]:
        """Store several producers' batches durably in ONE transaction (group
        commit: one fsync for all); returns each batch's committed sequence,
        in order, as `append` would."""
        ...

    def committed_sequence(self, producer_id: str) -> int:
        """The producer's highest committed sequence; 0 if unknown."""
        ...

    def newest(
        self, object_type: str, object_uuid: str, *, event_type: int = 0, limit: int = 100
    ) -> list[StoredEvent]:
        """Newest first (timestamp desc, then cursor desc); event_type 0 = any;
        limit < 0 = all; 0 = []."""
        ...

    def after(
        self,
        object_type: str,
        object_uuid: str,
        *,
        cursor: int,
        event_type: int = 0,
        limit: int = 1000,
    ) -> list[StoredEvent]:
        """Events stored after `cursor`, oldest first (cursor asc) — for watches."""
        ...

    def since(
        self,
        object_type: str,
        object_uuid: str,
        *,
        timestamp: float,
        event_type: int = 0,
        limit: int = 1000,
    ) -> list[StoredEvent]:
        """Events with timestamp >= `timestamp`, oldest first (cursor asc)."""
        ...

    def last_cursor(self) -> int:
        """The highest cursor ever issued; 0 for an empty store."""
        ...

    def prune(self, now: float, retention: Mapping[int, float]) -> list[PruneNote]:
        """Delete events older than their type's retention (seconds; <0 keeps forever);
        returns one PruneNote(object_type, object_uuid, event_type, count, before) per
        object and type pruned."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store takes on disk (from any thread; not cheap enough
        for every append)."""
        ...

    def watch_commits(self, wake: Callable[[], None]) -> None:
        """Call `wake()` (from any thread) whenever another process may have committed
        events to this store, so that watches here see them at once."""
        ...

    def close(self) -> None:
        """Release the store's files and connections; no call may follow."""
        ...
