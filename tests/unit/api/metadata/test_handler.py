"""services/api/metadata/handler.py over records kept in memory: the order of
the checks, and what a set or delete writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from google.protobuf import struct_pb2
from sfmesh.v1 import records_pb2

from services.api import sizes
from services.api.metadata.handler import MetadataHandler
from services.common import errors


@dataclass(frozen=True)
class Held:
    """A namespace record as read."""

    record: records_pb2.NamespaceRecord


class Records:
    """Namespace records by name, and how many writes they took."""

    def __init__(self) -> None:
        self.records = {"ns": records_pb2.NamespaceRecord(name="ns")}
        self.writes = 0

    async def find(self, name: str) -> Held:
        if name not in self.records:
            raise errors.NotFound("namespace not found")
        return Held(self.records[name])

    async def update(
        self, held: Held, change: Callable[[records_pb2.NamespaceRecord], None]
    ) -> records_pb2.NamespaceRecord:
        record = records_pb2.NamespaceRecord()
        record.CopyFrom(held.record)
        change(record)
        self.records[record.name] = record
        self.writes += 1
        return record


def handler(
    records: Records, *, bounded: bool = False
) -> MetadataHandler[Held, records_pb2.NamespaceRecord]:
    return MetadataHandler(
        find=records.find,
        metadata_of=lambda record, name: record.metadata,
        update=records.update,
        bounded=bounded,
    )


def text(value: str) -> struct_pb2.Value:
    return struct_pb2.Value(string_value=value)


async def test_set_then_get_then_delete() -> None:
    records = Records()
    metadata = handler(records)
    await metadata.set("ns", "colour", text("blue"))
    assert (await metadata.get("ns")).fields["colour"].string_value == "blue"
    await metadata.delete("ns", "colour")
    assert "colour" not in (await metadata.get("ns")).fields
    assert records.writes == 2


async def test_a_missing_object_is_404_before_a_bad_key_is_400() -> None:
    metadata = handler(Records())
    with pytest.raises(errors.NotFound):
        await metadata.set("other", "", text("blue"))
    with pytest.raises(errors.NotFound):
        await metadata.delete("other", "")


async def test_an_unset_value_is_no_value() -> None:
    with pytest.raises(errors.InvalidArgument, match="no value specified"):
        await handler(Records()).set("ns", "colour", struct_pb2.Value())


async def test_deleting_an_absent_key_writes_nothing() -> None:
    records = Records()
    await handler(records).delete("ns", "colour")
    assert records.writes == 0
    with pytest.raises(errors.InvalidArgument, match="no key specified"):
        await handler(records).delete("ns", "")


async def test_a_bounded_record_stops_growing_at_the_budget() -> None:
    records = Records()
    big = text("x" * (sizes.METADATA_VALUE_BYTES - 2))  # the largest value, quoted
    for index in range(sizes.METADATA_KEYS - 1):
        await handler(records).set("ns", f"k{index}", big)
    with pytest.raises(errors.InvalidArgument, match="record may be at most"):
        await handler(records, bounded=True).set("ns", "last", big)
    await handler(records).set("ns", "last", big)  # unbounded: past the budget
