"""The metadata routes of every kind of object, written once: read an
object's metadata, set one key, delete one key (instances reference §1.10,
other-apis §1.15, §2 and §3.8).

A kind says how to find its object (visibility and 404 included), where the
metadata sits in the record (an interface's sits in its instance's record),
and how its record is written (compare-and-swap); whether a set may not grow
the record past the instance record budget; and whether requests and
changes are recorded as events (instances do). The checks and their order
are the same for every kind: find (404), then the key and value (400).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf import empty_pb2, json_format, struct_pb2
from google.protobuf.message import Message

from services.api import sizes
from services.api.clients.events import Events
from services.api.metadata import rules
from services.common import errors


class Stored(Protocol):
    """A record as read, with what its compare-and-swap needs."""

    @property
    def record(self) -> Any:
        """The record."""


RecordT = TypeVar("RecordT", bound=Message)
StoredT = TypeVar("StoredT", bound=Stored)


@dataclass(frozen=True)
class MetadataEvents(Generic[StoredT]):
    """How a kind records its metadata requests (audit) and changes
    (`set attribute` of `metadata`)."""

    events: Events
    """Where events go."""
    kind: str
    """The object type events are recorded on."""
    uuid_of: Callable[[StoredT], str]
    """The uuid events are recorded on."""


class MetadataHandler(Generic[StoredT, RecordT]):
    """Get, set and delete of one kind's metadata."""

    def __init__(
        self,
        *,
        find: Callable[[str], Awaitable[StoredT]],
        metadata_of: Callable[[RecordT, str], struct_pb2.Struct],
        update: Callable[[StoredT, Callable[[RecordT], None]], Awaitable[RecordT]],
        bounded: bool = False,
        recorded: MetadataEvents[StoredT] | None = None,
    ) -> None:
        """`find`: the object a ref names, visible to the caller (else 404).
        `metadata_of`: the metadata in a record, given the ref. `update`: the
        store's compare-and-swap. `bounded`: a set may not grow the record
        past `sizes.INSTANCE_RECORD_BYTES`. `recorded`: events, if any."""
        self._find = find
        self._metadata_of = metadata_of
        self._update = update
        self._bounded = bounded
        self._recorded = recorded

    async def get(self, ref: str) -> struct_pb2.Struct:
        """The metadata of the object `ref` names."""
        stored = await self._find(ref)
        return self._metadata_of(stored.record, ref)

    async def set(self, ref: str, key: str, value: struct_pb2.Value) -> empty_pb2.Empty:
        """Store `key: value` (`rules.check_entry`); an unset value is none."""
        stored = await self._find(ref)
        given = json_format.MessageToDict(value)
        rules.check_entry(key, given)

        def store_value(record: RecordT) -> None:
            before = record.ByteSize()
            rules.put_entry(self._metadata_of(record, ref), key, value)
            if self._bounded:
                sizes.check_record_growth(before, record)

        self._audit(stored, "set metadata key request from REST API", {"key": key, "value": given})
        record = await self._update(stored, store_value)
        self._changed(stored, record, ref)
        return empty_pb2.Empty()

    async def delete(self, ref: str, key: str) -> empty_pb2.Empty:
        """Remove `key`; fine when it is not there."""
        stored = await self._find(ref)
        if not key:
            raise errors.InvalidArgument("no key specified")
        self._audit(stored, "delete metadata key request from REST API", {"key": key})
        if key in self._metadata_of(stored.record, ref).fields:

            def drop_key(record: RecordT) -> None:
                self._metadata_of(record, ref).fields.pop(key, None)

            record = await self._update(stored, drop_key)
            self._changed(stored, record, ref)
        return empty_pb2.Empty()

    def _audit(self, stored: StoredT, message: str, extra: dict[str, object]) -> None:
        if self._recorded is not None:
            recorded = self._recorded
            recorded.events.audit(recorded.uuid_of(stored), message, extra, kind=recorded.kind)

    def _changed(self, stored: StoredT, record: RecordT, ref: str) -> None:
        if self._recorded is not None:
            recorded = self._recorded
            metadata = json_format.MessageToDict(self._metadata_of(record, ref))
            recorded.events.attribute_set(
                recorded.uuid_of(stored), "metadata", metadata, kind=recorded.kind
            )
