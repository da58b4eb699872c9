"""An `EventSink` for tests: it keeps what a service emits instead of
sending it to an eventlog."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Emitted(NamedTuple):
    """One event as emitted."""

    object_type: str
    object_uuid: str
    event_type: int
    message: str
    extra: dict[str, Any]


class RecordedEvents:
    """Every event emitted, in order."""

    def __init__(self) -> None:
        self.events: list[Emitted] = []

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
        event = Emitted(object_type, object_uuid, event_type, message, dict(extra or {}))
        self.events.append(event)

    def messages(self, uuid: str) -> list[str]:
        """The messages of the events of object `uuid`."""
        return [event.message for event in self.events if event.object_uuid == uuid]
