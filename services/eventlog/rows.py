"""The `events` table as both stores hold it, pure: a record as a row, a row
as a `StoredEvent`, the SELECT behind each read of `EventStore`, and what a
prune deletes.

Protobuf messages are converted to and from rows here and nowhere else. The
SQL is written once, with `?` for each parameter; a store whose driver
wants another marker (psycopg's `%s`) passes it as `mark`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sfmesh.v1 import event_pb2, eventlog_service_pb2

from services.eventlog.storage import StoredEvent

INSERTED = (
    "event_id",
    "object_type",
    "object_uuid",
    "type",
    "timestamp",
    "fqdn",
    "duration",
    "message",
    "extra",
)
"""The columns of a `Row`, in order."""

INDEXES = """
CREATE INDEX IF NOT EXISTS events_by_object
    ON events (object_type, object_uuid, timestamp DESC, cursor DESC);
CREATE INDEX IF NOT EXISTS events_by_object_type
    ON events (object_type, object_uuid, type, timestamp DESC, cursor DESC);
CREATE INDEX IF NOT EXISTS events_by_object_cursor ON events (object_type, object_uuid, cursor);
CREATE INDEX IF NOT EXISTS events_by_age ON events (type, timestamp);
"""
"""The indexes both stores keep on `events`: one object's newest events (with
and without a type), a watch's (object, cursor), and pruning (type, time)."""
SELECTED = "cursor, type, timestamp, fqdn, duration, message, extra"
"""The columns a read selects, the order `stored_event` takes."""

Row = tuple[str, str, str, int, float, str | None, float | None, str, bytes | None]
"""An `events` row as inserted, in `INSERTED` order."""
SelectedRow = tuple[int, int, float, str | None, float | None, str, bytes | None]
"""An `events` row as read, in `SELECTED` order."""


def record_row(record: eventlog_service_pb2.EventRecord) -> Row:
    """The `events` row of a record: an empty fqdn and an unset duration or extra are NULL;
    extra is the Struct in protobuf binary, so numbers come back exactly as sent."""
    return (
        record.event_id,
        record.object_type,
        record.object_uuid,
        record.type,
        record.timestamp,
        record.fqdn or None,
        record.duration if record.HasField("duration") else None,
        record.message,
        record.extra.SerializeToString() if record.HasField("extra") else None,
    )


def stored_event(row: SelectedRow) -> StoredEvent:
    """A `StoredEvent` from a row selected as `SELECTED`."""
    cursor, kind, timestamp, fqdn, duration, message, extra = row
    event = event_pb2.Event(type=kind, timestamp=timestamp, message=message)  # type: ignore[arg-type]
    if fqdn is not None:
        event.fqdn = fqdn
    if duration is not None:
        event.duration = duration
    if extra is not None:
        event.extra.ParseFromString(extra)
    return StoredEvent(cursor=cursor, event=event)


def prune_cutoffs(now: float, retention: Mapping[int, float]) -> list[tuple[int, float]]:
    """(event type, cut-off) for each type a prune at `now` deletes from, in type order:
    events of that type older than the cut-off go; a negative age keeps a type forever."""
    return [(kind, now - age) for kind, age in sorted(retention.items()) if age >= 0]


@dataclass(frozen=True)
class Select:
    """One read's SQL and its parameters."""

    sql: str
    args: tuple[object, ...]


def newest(
    object_type: str, object_uuid: str, *, event_type: int, limit: int, mark: str = "?"
) -> Select | None:
    """One object's events, newest first (timestamp desc, then cursor desc); None
    when `limit` is 0, as nothing needs reading."""
    return _select(
        (object_type, object_uuid), "", "timestamp DESC, cursor DESC", event_type, limit, mark
    )


def after(
    object_type: str, object_uuid: str, *, cursor: int, event_type: int, limit: int, mark: str = "?"
) -> Select | None:
    """One object's events stored after `cursor`, oldest first."""
    return _select(
        (object_type, object_uuid, cursor), " AND cursor > ?", "cursor", event_type, limit, mark
    )


def since(
    object_type: str,
    object_uuid: str,
    *,
    timestamp: float,
    event_type: int,
    limit: int,
    mark: str = "?",
) -> Select | None:
    """One object's events with timestamp >= `timestamp`, oldest first (cursor asc)."""
    return _select(
        (object_type, object_uuid, timestamp),
        " AND timestamp >= ?",
        "cursor",
        event_type,
        limit,
        mark,
    )


def _select(
    args: tuple[object, ...], where: str, order: str, event_type: int, limit: int, mark: str
) -> Select | None:
    if limit == 0:
        return None
    if event_type:
        where += " AND type = ?"
        args += (event_type,)
    sql = f"SELECT {SELECTED} FROM events WHERE object_type = ? AND object_uuid = ?{where}"
    sql += f" ORDER BY {order}"
    if limit > 0:
        sql += " LIMIT ?"
        args += (limit,)
    return Select(sql.replace("?", mark), args)
