"""Versions never reuse an index, dedupe the newest, prune the oldest; counts stay >= 0."""

from __future__ import annotations

from sfmesh.v1 import artifact_pb2, records_pb2

from services.common import artifact_versions as rules


def _artifact(max_versions: int = 0) -> records_pb2.ArtifactRecord:
    record = records_pb2.ArtifactRecord()
    record.artifact.max_versions = max_versions
    return record


def test_indexes_only_go_up_even_after_a_removal() -> None:
    record = _artifact()
    rules.add_version(record, "a")
    rules.add_version(record, "b")
    assert rules.remove_version(record, 2) is not None
    change = rules.add_version(record, "c")
    assert change.added and [v.index for v in record.versions] == [1, 3]


def test_the_newest_blob_or_its_checksum_again_adds_nothing() -> None:
    record = _artifact()
    rules.add_version(record, "a", sha512="aa")
    again = rules.add_version(record, "a")
    same_content = rules.add_version(record, "b", sha512="aa", newest_sha512="aa")
    assert not again.added and not same_content.added
    assert same_content.blob_uuid == "a"
    assert len(record.versions) == 1 and record.last_index == 1


def test_an_older_blob_again_is_a_new_version() -> None:
    record = _artifact()
    rules.add_version(record, "a")
    rules.add_version(record, "b")
    assert rules.add_version(record, "a").added
    assert [v.blob_uuid for v in record.versions] == ["a", "b", "a"]


def test_versions_beyond_max_are_pruned_oldest_first() -> None:
    record = _artifact(max_versions=2)
    for blob in "abc":
        change = rules.add_version(record, blob)
    assert change.released == ("a",)
    assert [v.blob_uuid for v in record.versions] == ["b", "c"]
    record.artifact.max_versions = 1
    assert rules.prune(record) == ("b",)


def test_the_default_keeps_three() -> None:
    record = _artifact()
    for blob in "abcd":
        rules.add_version(record, blob)
    assert [v.index for v in record.versions] == [2, 3, 4]


def test_removing_an_unknown_version_is_none() -> None:
    record = _artifact()
    rules.add_version(record, "a")
    assert rules.remove_version(record, 7) is None
    assert rules.release_all(record) == ("a",)


def test_references_never_go_below_zero_and_zero_deletes() -> None:
    blob = records_pb2.BlobRecord()
    blob.blob.state = artifact_pb2.BLOB_STATE_CREATED
    blob.blob.reference_count = 1
    rules.change_references(blob, +1, now=5.0)
    assert blob.blob.reference_count == 2
    rules.change_references(blob, -3, now=6.0)
    assert blob.blob.reference_count == 0
    assert blob.blob.state == artifact_pb2.BLOB_STATE_DELETED
    assert blob.deleted_at == 6.0


def _reserved(state: int = artifact_pb2.BLOB_STATE_INITIAL) -> records_pb2.BlobRecord:
    return records_pb2.BlobRecord(blob=artifact_pb2.Blob(uuid="b", state=state))  # type: ignore[arg-type]


def _snapshot_artifact(*versions: str) -> records_pb2.ArtifactRecord:
    record = _artifact()
    record.artifact.state = (
        artifact_pb2.ARTIFACT_STATE_CREATED if versions else artifact_pb2.ARTIFACT_STATE_INITIAL
    )
    for version in versions:
        rules.add_version(record, version)
    return record


def test_a_failed_first_snapshot_fails_its_artifact() -> None:
    blob, artifact = _reserved(), _snapshot_artifact()
    assert rules.fail_reservation(blob, artifact, "qemu-img failed") == (True, True)
    assert blob.blob.state == artifact_pb2.BLOB_STATE_ERROR
    assert artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_ERROR
    assert artifact.artifact.error_message == "qemu-img failed"


def test_a_failed_later_snapshot_leaves_the_artifact_be() -> None:
    blob, artifact = _reserved(), _snapshot_artifact("old")
    assert rules.fail_reservation(blob, artifact, "x") == (True, False)
    assert artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_CREATED
    assert not artifact.artifact.HasField("error_message")
    assert rules.fail_reservation(_reserved(), None, "x") == (True, False)  # artifact gone


def test_a_blob_with_an_outcome_already_changes_nothing() -> None:
    for state in (
        artifact_pb2.BLOB_STATE_CREATED,
        artifact_pb2.BLOB_STATE_ERROR,
        artifact_pb2.BLOB_STATE_DELETED,
    ):
        blob, artifact = _reserved(state), _snapshot_artifact()
        assert rules.fail_reservation(blob, artifact, "x") == (False, False)
        assert blob.blob.state == state
        assert artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_INITIAL


def _blob(uuid: str, refs: int, parent: str = "") -> records_pb2.BlobRecord:
    record = records_pb2.BlobRecord(
        blob=artifact_pb2.Blob(
            uuid=uuid, state=artifact_pb2.BLOB_STATE_CREATED, reference_count=refs
        )
    )
    if parent:
        record.blob.depends_on = parent
    return record


def test_a_thin_blob_deleted_answers_its_parent() -> None:
    child = _blob("child", 2, parent="base")
    assert rules.change_references(child, -1, 5.0) is None  # still held
    assert rules.change_references(child, -1, 6.0) == "base"
    assert child.blob.state == artifact_pb2.BLOB_STATE_DELETED and child.deleted_at == 6.0
    assert rules.change_references(child, -1, 7.0) is None  # deleted already: no second cascade
    assert rules.change_references(_blob("base", 1), -1, 1.0) is None  # self-contained


def test_the_cascade_runs_up_the_chain_as_far_as_the_blobs_go() -> None:
    blobs = {
        "top": _blob("top", 1, parent="middle"),
        "middle": _blob("middle", 1, parent="base"),
        "base": _blob("base", 2),
    }
    assert rules.change_references_through(blobs, "top", -1, 3.0) == []
    states = {name: (b.blob.state, b.blob.reference_count) for name, b in blobs.items()}
    deleted = artifact_pb2.BLOB_STATE_DELETED
    assert states == {
        "top": (deleted, 0),
        "middle": (deleted, 0),
        "base": (artifact_pb2.BLOB_STATE_CREATED, 1),  # another child holds it still
    }
    short = {"top": _blob("top", 1, parent="middle")}
    assert rules.change_references_through(short, "top", -1, 3.0) == ["middle"]
    assert rules.change_references_through({}, "gone", -1, 3.0) == []


def test_the_ancestors_to_read_are_the_parents_missing() -> None:
    blobs = {"top": _blob("top", 1, parent="middle"), "other": _blob("other", 1, parent="top")}
    assert rules.ancestors_to_read(blobs) == {"middle"}
    blobs["middle"] = _blob("middle", 1)
    assert rules.ancestors_to_read(blobs) == set()
