"""services/api/nodes/rules.py: the node view (reference §7), what `deleted`
means, what a deleted node still holds."""

from __future__ import annotations

from sfmesh.v1 import (
    artifact_pb2,
    instance_pb2,
    node_service_pb2,
    records_pb2,
    scheduler_service_pb2,
)

from services.api.nodes import rules
from services.common import instance_states as states


def test_node_view_from_a_record() -> None:
    record = records_pb2.NodeRecord(
        name="hv1",
        state=node_service_pb2.NODE_STATE_MISSING,
        facts=scheduler_service_pb2.HypervisorFacts(node="hv1", address="10.0.0.5:13020"),
        lastseen=1700000000.5,
    )
    record.metadata["rack"] = "b2"
    view = rules.node_view(record)
    assert (view.uuid, view.name, view.ip, view.version) == ("hv1", "hv1", "10.0.0.5", 7)
    assert view.state == node_service_pb2.NODE_STATE_MISSING
    assert view.lastseen == 1700000000.5
    assert view.is_hypervisor
    assert not view.is_cluster_maintainer
    assert dict(view.metadata) == {"rack": "b2"}


def test_a_view_without_metadata_has_an_empty_object() -> None:
    assert rules.node_view(records_pb2.NodeRecord(name="hv1")).HasField("metadata")


def test_deleted_is_written_once() -> None:
    record = records_pb2.NodeRecord(name="hv1", state=node_service_pb2.NODE_STATE_CREATED)
    assert rules.mark_deleted(record, 100.0)
    assert (record.state, record.deleted_at) == (node_service_pb2.NODE_STATE_DELETED, 100.0)
    assert not rules.mark_deleted(record, 200.0)
    assert record.deleted_at == 100.0


def test_what_a_node_still_holds() -> None:
    live = instance_pb2.Instance(node="hv1", state=states.CREATED)
    gone = instance_pb2.Instance(node="hv1", state=states.DELETED)
    elsewhere = instance_pb2.Instance(node="hv2", state=states.ERROR)
    assert rules.left_on(live, "hv1")
    assert not rules.left_on(gone, "hv1")
    assert not rules.left_on(elsewhere, "hv1")


def test_retired_once_settled() -> None:
    deleted = records_pb2.NodeRecord(state=node_service_pb2.NODE_STATE_DELETED, deleted_at=1000.0)
    assert rules.unretired(deleted)
    assert not rules.settled(deleted, 1000.0 + rules.SETTLE_SECONDS - 1)
    assert rules.settled(deleted, 1000.0 + rules.SETTLE_SECONDS)
    deleted.retired_at = 2000.0
    assert not rules.unretired(deleted)
    assert not rules.unretired(records_pb2.NodeRecord(state=node_service_pb2.NODE_STATE_MISSING))


def test_a_location_dropped() -> None:
    blob = records_pb2.BlobRecord(blob=artifact_pb2.Blob(locations=["hv1", "hv2", "hv1"]))
    rules.without_location(blob, "hv1")
    assert list(blob.blob.locations) == ["hv2"]
