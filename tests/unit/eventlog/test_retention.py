"""Unit tests of services/eventlog/retention.py (pure)."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from sfmesh.v1 import event_pb2

from services.eventlog import retention
from services.eventlog.storage import PruneNote

DAY = 86400.0


def test_defaults_follow_the_reference() -> None:
    assert retention.build_retention() == {
        event_pb2.EVENT_TYPE_AUDIT: 90 * DAY,
        event_pb2.EVENT_TYPE_MUTATE: 90 * DAY,
        event_pb2.EVENT_TYPE_STATUS: 7 * DAY,
        event_pb2.EVENT_TYPE_USAGE: 30 * DAY,
        event_pb2.EVENT_TYPE_RESOURCES: 7 * DAY,
        event_pb2.EVENT_TYPE_PRUNE: 30 * DAY,
        event_pb2.EVENT_TYPE_HISTORIC: 90 * DAY,
    }


def test_every_recordable_event_type_has_a_default() -> None:
    recordable = {
        value.number
        for value in event_pb2.EventType.DESCRIPTOR.values
        if value.number != event_pb2.EVENT_TYPE_UNSPECIFIED
    }
    assert set(retention.DEFAULT_RETENTION_DAYS) == recordable


def test_wire_names_come_from_the_proto() -> None:
    assert retention.wire_name(event_pb2.EVENT_TYPE_STATUS) == "status"
    assert retention.wire_name(event_pb2.EVENT_TYPE_RESOURCES) == "resources"
    assert retention.event_type_by_wire_name()["prune"] == event_pb2.EVENT_TYPE_PRUNE
    with pytest.raises(ValueError, match="unknown EventType value 99"):
        retention.wire_name(99)


def test_overrides_replace_defaults_and_negative_keeps_forever() -> None:
    table = retention.build_retention({"status": 14, "usage": -1, "audit": 0.5})
    assert table[event_pb2.EVENT_TYPE_STATUS] == 14 * DAY
    assert table[event_pb2.EVENT_TYPE_USAGE] == retention.FOREVER < 0
    assert table[event_pb2.EVENT_TYPE_AUDIT] == 0.5 * DAY
    assert table[event_pb2.EVENT_TYPE_MUTATE] == 90 * DAY


def test_an_unknown_type_in_overrides_is_refused() -> None:
    with pytest.raises(ValueError, match="'statuses'"):
        retention.build_retention({"statuses": 3})


def test_parse_overrides_days() -> None:
    assert retention.parse_overrides_days("") == {}
    assert retention.parse_overrides_days(" status = 14 , usage=-1,") == {
        "status": 14.0,
        "usage": -1.0,
    }


@pytest.mark.parametrize("text", ["status", "=3", "status=soon"])
def test_parse_overrides_days_refuses_malformed_items(text: str) -> None:
    with pytest.raises(ValueError):
        retention.parse_overrides_days(text)


def test_parse_overrides_gives_the_whole_table_in_seconds() -> None:
    table = retention.parse_overrides("status=1,prune=-1")
    assert table[event_pb2.EVENT_TYPE_STATUS] == DAY
    assert table[event_pb2.EVENT_TYPE_PRUNE] < 0
    assert table[event_pb2.EVENT_TYPE_HISTORIC] == 90 * DAY
    assert retention.parse_overrides("") == retention.build_retention()


NOTE = PruneNote("instance", "u-1", event_pb2.EVENT_TYPE_STATUS, 12, 1_700_000_000.0)


def test_prune_records_describe_each_note() -> None:
    other = PruneNote("network", "n-1", event_pb2.EVENT_TYPE_USAGE, 1, 1_700_000_000.5)
    records = retention.prune_records([NOTE, other], now=1_700_600_000.0, fqdn="log.example")
    assert len(records) == 2
    first = records[0]
    assert first.message == (
        "pruned 12 events of type status from before 2023-11-14T22:13:20+00:00"
    )
    assert (first.object_type, first.object_uuid) == ("instance", "u-1")
    assert first.type == event_pb2.EVENT_TYPE_PRUNE
    assert first.timestamp == 1_700_600_000.0
    assert first.fqdn == "log.example"
    assert first.sequence == 0
    assert not first.HasField("duration")
    expected = struct_pb2.Struct()
    expected.update({"event_type": "status", "count": 12, "before": 1_700_000_000.0})
    assert first.extra == expected
    assert records[1].object_type == "network"
    assert records[1].message.startswith("pruned 1 events of type usage from before ")


def test_prune_event_ids_are_deterministic_and_distinct() -> None:
    again = retention.prune_records([NOTE], now=1.0, fqdn="a")[0]
    later = retention.prune_records([NOTE], now=2.0, fqdn="b")[0]
    assert again.event_id == later.event_id
    variants = [
        PruneNote("instance", "u-2", NOTE.event_type, NOTE.count, NOTE.before),
        PruneNote("network", "u-1", NOTE.event_type, NOTE.count, NOTE.before),
        PruneNote("instance", "u-1", event_pb2.EVENT_TYPE_USAGE, NOTE.count, NOTE.before),
        PruneNote("instance", "u-1", NOTE.event_type, 13, NOTE.before),
        PruneNote("instance", "u-1", NOTE.event_type, NOTE.count, NOTE.before + 0.001),
    ]
    ids = {record.event_id for record in retention.prune_records(variants, now=1.0, fqdn="a")}
    assert len(ids) == len(variants)
    assert again.event_id not in ids


def test_no_notes_no_records() -> None:
    assert retention.prune_records([], now=1.0, fqdn="a") == []
