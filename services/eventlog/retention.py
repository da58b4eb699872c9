"""Retention of events, pure: how long each event type is kept, and the `prune`
events that record what a sweep deleted (reference §7.1, §7.6).

A retention table maps an `event_pb2.EventType` number to seconds; a negative age
keeps that type forever, and a type missing from the table is kept forever too.
Operators speak in days and wire names (`status=14,usage=-1`); `build_retention`
turns that into the table the store's `prune` takes.

Nothing here reads a clock, a file or the network.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from sfmesh.v1 import event_pb2, eventlog_service_pb2

from services.common import wire
from services.eventlog.storage import PruneNote

DAY = 86400.0
"""Seconds in a day."""

FOREVER = -1.0
"""A retention age that keeps events forever."""

DEFAULT_RETENTION_DAYS: Mapping[int, float] = {
    event_pb2.EVENT_TYPE_AUDIT: 90,
    event_pb2.EVENT_TYPE_MUTATE: 90,
    event_pb2.EVENT_TYPE_STATUS: 7,
    event_pb2.EVENT_TYPE_USAGE: 30,
    event_pb2.EVENT_TYPE_RESOURCES: 7,
    event_pb2.EVENT_TYPE_PRUNE: 30,
    event_pb2.EVENT_TYPE_HISTORIC: 90,
}
"""Shaken Fist's defaults (`MAX_<TYPE>_EVENT_AGE`), in days, per event type."""

_PRUNE_ID_NAMESPACE = uuid.UUID("5b0c6a52-6f1e-4f55-9d0e-3c1f2b6e8a17")
"""Namespace of the uuid5 ids of prune events, so the same note gives the same id."""


def wire_name(event_type: int) -> str:
    """The wire string of an event type (`3` -> "status")."""
    return wire.wire_name(event_pb2.EventType.DESCRIPTOR, event_type)


def event_type_by_wire_name() -> dict[str, int]:
    """Every recordable event type by its wire string ("status" -> 3)."""
    return {wire_name(number): number for number in DEFAULT_RETENTION_DAYS}


def build_retention(overrides_days: Mapping[str, float] | None = None) -> dict[int, float]:
    """The retention table in seconds: the defaults, with `overrides_days` (wire name
    -> days, negative = forever) applied. An unknown wire name is a ValueError."""
    by_name = event_type_by_wire_name()
    days = dict(DEFAULT_RETENTION_DAYS)
    for name, age in (overrides_days or {}).items():
        if name not in by_name:
            known = ", ".join(sorted(by_name))
            raise ValueError(f"unknown event type {name!r} in retention (known: {known})")
        days[by_name[name]] = age
    return {kind: (FOREVER if age < 0 else age * DAY) for kind, age in days.items()}


def parse_overrides_days(text: str) -> dict[str, float]:
    """Parse `"status=14,usage=-1"` (a flag or `SFMESH_*` value) into wire name -> days.
    Empty text means no overrides; a malformed item is a ValueError."""
    overrides: dict[str, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"retention item {item.strip()!r} is not <type>=<days>")
        try:
            overrides[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"retention days {value.strip()!r} is not a number") from None
    return overrides


def parse_overrides(text: str) -> dict[int, float]:
    """The retention table in seconds from an operator's `"status=14,usage=-1"`: the
    defaults with those overrides applied. A malformed or unknown item is a ValueError."""
    return build_retention(parse_overrides_days(text))


def prune_message(note: PruneNote) -> str:
    """What a prune event says, in Shaken Fist's words (without its chunk suffix)."""
    when = datetime.fromtimestamp(note.before, tz=UTC).isoformat()
    return f"pruned {note.count} events of type {wire_name(note.event_type)} from before {when}"


def prune_event_id(note: PruneNote) -> str:
    """A deterministic id for the prune event of `note`: a repeated note is not duplicated."""
    key = f"{note.object_type}/{note.object_uuid}/{note.event_type}/{note.before!r}/{note.count}"
    return str(uuid.uuid5(_PRUNE_ID_NAMESPACE, key))


def prune_records(
    notes: Iterable[PruneNote], now: float, fqdn: str
) -> list[eventlog_service_pb2.EventRecord]:
    """One `prune`-type event per note, on the pruned object, stamped `now` by `fqdn`.
    Sequence 0: the eventlog appends them under its own producer id."""
    records = []
    for note in notes:
        record = eventlog_service_pb2.EventRecord(
            event_id=prune_event_id(note),
            sequence=0,
            object_type=note.object_type,
            object_uuid=note.object_uuid,
            type=event_pb2.EVENT_TYPE_PRUNE,
            timestamp=now,
            fqdn=fqdn,
            message=prune_message(note),
        )
        record.extra.update(
            {"event_type": wire_name(note.event_type), "count": note.count, "before": note.before}
        )
        records.append(record)
    return records
