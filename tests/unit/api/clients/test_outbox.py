"""services/api/clients/outbox.py: when a sweep takes an entry, and what an
entry holds."""

from __future__ import annotations

from sfmesh.v1 import eventlog_service_pb2

from services.api.clients.outbox import KIND, Held, due, written_at
from services.common.events import EventBatch
from services.common.store import key

EventRecord = eventlog_service_pb2.EventRecord


def test_an_entry_was_written_when_its_oldest_event_was_built() -> None:
    records = [EventRecord(timestamp=20.0), EventRecord(timestamp=10.0)]
    assert written_at(records) == 10.0
    assert written_at([]) == 0.0


def test_a_sweep_takes_entries_older_than_its_grace() -> None:
    records = [EventRecord(timestamp=100.0)]
    assert not due(records, 129.9, 30.0)
    assert due(records, 130.0, 30.0)
    assert due(records, 100.0, 0.0)


def test_an_entry_is_a_create_only_batch_of_the_events_recorded() -> None:
    held = Held(key(KIND, "e1"), EventBatch("host.example"))
    held.events.audit("i1", "create request from REST API")
    held.events.attribute_set("i1", "state", "initial")
    entry = held.entry()
    assert entry.key == b"/sfmesh/v1/outbox/e1"
    assert entry.mod_revision == 0
    stored = eventlog_service_pb2.RecordRequest.FromString(entry.value).events
    assert [event.event_id for event in stored] == [r.event_id for r in held.batch.records]
    assert [event.message for event in stored] == ["create request from REST API", "set attribute"]
    assert len({event.event_id for event in stored}) == 2
    assert all(event.fqdn == "host.example" and event.sequence == 0 for event in stored)
