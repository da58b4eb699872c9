"""services/api/instances/agent_rules.py: what a delete changes, how an
output blob is let go of, and when the sweep removes an operation."""

from __future__ import annotations

from sfmesh.v1 import agent_operation_pb2, artifact_pb2, instance_pb2, records_pb2

from services.api.instances.agent_rules import Fate, mark_deleted, purge_fate, release_output
from services.common import instance_states as states

NOW = 10_000.0
DELAY = 3600.0


def operation(*, deleted_at: float | None = None) -> records_pb2.AgentOperationRecord:
    record = records_pb2.AgentOperationRecord()
    record.operation.state = agent_operation_pb2.AGENT_OPERATION_STATE_COMPLETE
    if deleted_at is not None:
        record.operation.state = agent_operation_pb2.AGENT_OPERATION_STATE_DELETED
        record.deleted_at = deleted_at
    return record


def instance(state: int = states.CREATED, deleted_at: float = 0.0) -> records_pb2.InstanceRecord:
    return records_pb2.InstanceRecord(
        instance=instance_pb2.Instance(state=state),  # type: ignore[arg-type]
        deleted_at=deleted_at,
    )


def test_mark_deleted_records_when_once() -> None:
    record = operation()
    assert mark_deleted(record, 5.0)
    assert record.operation.state == agent_operation_pb2.AGENT_OPERATION_STATE_DELETED
    assert record.deleted_at == 5.0
    assert not mark_deleted(record, 9.0)
    assert record.deleted_at == 5.0


def test_an_output_blob_is_deleted_unless_a_label_holds_it() -> None:
    blob = records_pb2.BlobRecord(blob=artifact_pb2.Blob(state=artifact_pb2.BLOB_STATE_CREATED))
    assert release_output(blob, 7.0)
    assert blob.blob.state == artifact_pb2.BLOB_STATE_DELETED and blob.deleted_at == 7.0
    assert not release_output(blob, 8.0)
    assert blob.deleted_at == 7.0
    held = records_pb2.BlobRecord(
        blob=artifact_pb2.Blob(state=artifact_pb2.BLOB_STATE_CREATED, reference_count=1)
    )
    assert not release_output(held, 7.0)
    assert held.blob.state == artifact_pb2.BLOB_STATE_CREATED


def test_a_deleted_operation_goes_after_the_delay() -> None:
    assert purge_fate(operation(deleted_at=NOW - DELAY), instance(), NOW, DELAY) == Fate.REMOVE
    assert purge_fate(operation(deleted_at=NOW - DELAY + 1), instance(), NOW, DELAY) == Fate.KEEP


def test_a_live_operation_of_a_live_instance_stays() -> None:
    assert purge_fate(operation(), instance(), NOW, DELAY) == Fate.KEEP
    assert purge_fate(operation(), instance(states.ERROR), NOW, DELAY) == Fate.KEEP


def test_a_deletion_without_a_time_is_stamped() -> None:
    assert purge_fate(operation(deleted_at=0.0), instance(), NOW, DELAY) == Fate.STAMP


def test_an_operation_of_a_gone_instance_goes_at_once() -> None:
    assert purge_fate(operation(), None, NOW, DELAY) == Fate.REMOVE
    assert purge_fate(operation(deleted_at=NOW), None, NOW, DELAY) == Fate.REMOVE


def test_an_operation_of_a_deleted_instance_goes_after_the_delay() -> None:
    long_ago = instance(states.DELETED, NOW - DELAY)
    assert purge_fate(operation(), long_ago, NOW, DELAY) == Fate.REMOVE
    assert purge_fate(operation(deleted_at=NOW), long_ago, NOW, DELAY) == Fate.REMOVE
    assert purge_fate(operation(), instance(states.DELETED, NOW - 1), NOW, DELAY) == Fate.KEEP
    assert purge_fate(operation(), instance(states.DELETE_WAIT), NOW, DELAY) == Fate.KEEP
