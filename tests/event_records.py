"""Event records for tests of the eventlog's stores: defaults for what a test
does not care about, and the messages of what a read returned."""

from __future__ import annotations

from typing import Any

from sfmesh.v1 import event_pb2, eventlog_service_pb2

from services.eventlog.storage import StoredEvent

NOW = 1_700_000_000.0


def rec(
    event_id: str,
    sequence: int = 0,
    *,
    uuid: str = "u1",
    object_type: str = "instance",
    kind: int = event_pb2.EVENT_TYPE_STATUS,
    timestamp: float = NOW,
    message: str = "",
    **fields: Any,
) -> eventlog_service_pb2.EventRecord:
    """An EventRecord; its message is its event_id unless given."""
    return eventlog_service_pb2.EventRecord(
        event_id=event_id,
        sequence=sequence,
        object_type=object_type,
        object_uuid=uuid,
        type=kind,  # type: ignore[arg-type]
        timestamp=timestamp,
        message=message or event_id,
        **fields,
    )


def messages(found: list[StoredEvent]) -> list[str]:
    """The messages of stored events, in the order given."""
    return [stored.event.message for stored in found]
