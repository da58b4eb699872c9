"""Artifact and blob views from records. Pure."""

from __future__ import annotations

from sfmesh.v1 import artifact_pb2, instance_pb2, records_pb2

from services.api.artifacts import rules, views
from services.api.instances.deletion import disk_blobs
from services.common import instance_states as states


def _blob(uuid: str, size: int = 10) -> records_pb2.BlobRecord:
    return records_pb2.BlobRecord(
        blob=artifact_pb2.Blob(
            uuid=uuid, size=size, reference_count=1, state=artifact_pb2.BLOB_STATE_CREATED
        )
    )


def _artifact() -> records_pb2.ArtifactRecord:
    return rules.new_record(
        uuid="a1",
        artifact_type=artifact_pb2.ARTIFACT_TYPE_IMAGE,
        source_url="debian:12",
        namespace="system",
        name="debian:12",
        now=1.0,
    )


def test_a_new_artifact_has_index_0_and_no_blob() -> None:
    view = views.artifact_view(_artifact(), {})
    assert view.index == 0 and not view.HasField("blob_uuid") and not view.blobs
    assert view.version == 6 and view.state == artifact_pb2.ARTIFACT_STATE_INITIAL


def test_versions_become_the_blobs_map_missing_blob_records_left_out() -> None:
    record = _artifact()
    record.versions.add(index=4, blob_uuid="b4")
    record.versions.add(index=5, blob_uuid="b5")
    record.versions.add(index=7, blob_uuid="gone")
    view = views.artifact_view(record, {"b4": _blob("b4"), "b5": _blob("b5", 20)}, {"b5": ["i1"]})
    assert view.index == 7 and view.blob_uuid == "gone"
    assert sorted(view.blobs) == [4, 5]
    assert view.blobs[5].size == 20 and list(view.blobs[5].instances) == ["i1"]
    assert not view.blobs[4].instances


def test_blob_views_carry_instances_and_index() -> None:
    view = views.blob_view(_blob("b1"), ["i1"], 3)
    assert list(view.instances) == ["i1"] and view.index == 3
    assert not views.blob_view(_blob("b1")).HasField("index")


def test_live_instances_use_their_disks_blobs_once_per_disk() -> None:
    instance = instance_pb2.Instance(
        state=states.CREATED,
        disks=[
            instance_pb2.Disk(device="vda", blob_uuid="b1"),
            instance_pb2.Disk(device="vdb", blob_uuid="b1"),
            instance_pb2.Disk(device="vdc"),
        ],
    )
    assert views.using_blobs(instance) == ["b1", "b1"]
    assert disk_blobs(instance) == ["b1", "b1"]  # a delete lets go of both (Q5)
    instance.state = states.DELETED
    assert views.using_blobs(instance) == []
