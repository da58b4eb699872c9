"""What a snapshot copy does to the records (reference §7.1, §11 Q12)."""

from __future__ import annotations

import pytest
from sfmesh.v1 import artifact_pb2, records_pb2

from services.node_agent import snapshot_outcome
from services.node_agent.snapshot_outcome import Copy

MADE = Copy(blob_uuid="new", size=4096, sha512="cd" * 64, format="qcow2")


def _artifact(*blobs: str, max_versions: int = 3) -> records_pb2.ArtifactRecord:
    record = records_pb2.ArtifactRecord(
        artifact=artifact_pb2.Artifact(
            uuid="a",
            state=artifact_pb2.ARTIFACT_STATE_INITIAL,
            artifact_type=artifact_pb2.ARTIFACT_TYPE_SNAPSHOT,
            max_versions=max_versions,
        )
    )
    for index, blob in enumerate(blobs, start=1):
        record.versions.add(index=index, blob_uuid=blob)
        record.last_index = index
    return record


def _blob(
    uuid: str, state: int = artifact_pb2.BLOB_STATE_INITIAL, refs: int = 0
) -> records_pb2.BlobRecord:
    return records_pb2.BlobRecord(
        blob=artifact_pb2.Blob(uuid=uuid, state=state, reference_count=refs)  # type: ignore[arg-type]
    )


def test_a_copy_becomes_the_newest_version() -> None:
    artifact, blob = _artifact(), _blob("new")
    applied = snapshot_outcome.apply_made(artifact, blob, {}, MADE, "node1", 50.0)
    assert applied == snapshot_outcome.Applied(added=True, index=1)
    assert artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_CREATED
    assert [(v.index, v.blob_uuid) for v in artifact.versions] == [(1, "new")]
    view = blob.blob
    assert view.state == artifact_pb2.BLOB_STATE_CREATED
    assert (view.size, view.sha512, view.format) == (4096, "cd" * 64, "qcow2")
    assert list(view.locations) == ["node1"] and view.reference_count == 1
    assert view.modified == view.fetched_at == 50.0


def test_the_same_content_still_makes_a_version() -> None:
    old = _blob("old", artifact_pb2.BLOB_STATE_CREATED, refs=1)
    old.blob.sha512 = MADE.sha512
    artifact = _artifact("old")
    applied = snapshot_outcome.apply_made(artifact, _blob("new"), {"old": old}, MADE, "n", 1.0)
    assert applied.added and applied.index == 2
    assert [v.blob_uuid for v in artifact.versions] == ["old", "new"]


def test_beyond_max_versions_the_oldest_lets_go_of_its_blob() -> None:
    old = _blob("old", artifact_pb2.BLOB_STATE_CREATED, refs=1)
    artifact = _artifact("old", max_versions=1)
    applied = snapshot_outcome.apply_made(artifact, _blob("new"), {"old": old}, MADE, "n", 1.0)
    assert applied.released == ("old",)
    assert [v.blob_uuid for v in artifact.versions] == ["new"]
    assert old.blob.reference_count == 0 and old.blob.state == artifact_pb2.BLOB_STATE_DELETED


def test_an_artifact_deleted_meanwhile_deletes_the_blob() -> None:
    artifact = _artifact()
    artifact.artifact.state = artifact_pb2.ARTIFACT_STATE_DELETED
    for gone in (artifact, None):
        blob = _blob("new")
        applied = snapshot_outcome.apply_made(gone, blob, {}, MADE, "n", 7.0)
        assert applied == snapshot_outcome.Applied(added=False)
        assert blob.blob.state == artifact_pb2.BLOB_STATE_DELETED and blob.deleted_at == 7.0
        assert not blob.blob.locations
    assert not artifact.versions


THIN = Copy(blob_uuid="new", size=4096, sha512="cd" * 64, format="qcow2", depends_on="base")


def test_a_thin_copy_depends_on_its_parent_which_gains_a_reference() -> None:
    base = _blob("base", artifact_pb2.BLOB_STATE_CREATED, refs=1)
    artifact, blob = _artifact(), _blob("new")
    applied = snapshot_outcome.apply_made(artifact, blob, {"base": base}, THIN, "n", 1.0)
    assert applied.added and blob.blob.depends_on == "base"
    assert (blob.blob.reference_count, base.blob.reference_count) == (1, 2)


def test_a_thin_copy_whose_parent_went_fails() -> None:
    for blobs in ({}, {"base": _blob("base", artifact_pb2.BLOB_STATE_DELETED)}):
        with pytest.raises(snapshot_outcome.ParentUnusable):
            snapshot_outcome.apply_made(_artifact(), _blob("new"), blobs, THIN, "n", 1.0)


def test_a_thin_copy_for_a_deleted_artifact_holds_nothing() -> None:
    base = _blob("base", artifact_pb2.BLOB_STATE_CREATED, refs=1)
    artifact = _artifact()
    artifact.artifact.state = artifact_pb2.ARTIFACT_STATE_DELETED
    blob = _blob("new")
    assert not snapshot_outcome.apply_made(artifact, blob, {"base": base}, THIN, "n", 1.0).added
    assert base.blob.reference_count == 1 and blob.blob.state == artifact_pb2.BLOB_STATE_DELETED


def test_a_pruned_thin_version_lets_go_of_its_parent() -> None:
    base = _blob("base", artifact_pb2.BLOB_STATE_CREATED, refs=2)
    old = _blob("old", artifact_pb2.BLOB_STATE_CREATED, refs=1)
    old.blob.depends_on = "base"
    artifact = _artifact("old", max_versions=1)
    blobs = {"old": old, "base": base}
    applied = snapshot_outcome.apply_made(artifact, _blob("new"), blobs, THIN, "n", 1.0)
    assert applied.released == ("old",)
    assert old.blob.state == artifact_pb2.BLOB_STATE_DELETED
    assert base.blob.reference_count == 2  # +1 from the new child, -1 from the pruned one


def test_a_copy_into_an_artifact_in_error_makes_it_created() -> None:
    """Two copies of a first snapshot in flight: the first failed (the
    artifact `error`), the second succeeded."""
    artifact = _artifact()
    artifact.artifact.state = artifact_pb2.ARTIFACT_STATE_ERROR
    artifact.artifact.error_message = "the first copy failed"
    assert snapshot_outcome.apply_made(artifact, _blob("new"), {}, MADE, "n", 1.0).added
    assert artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_CREATED
    assert not artifact.artifact.HasField("error_message")
