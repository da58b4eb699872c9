"""Which deleted artifact and blob records may be forgotten, and which
artifacts a namespace's end takes."""

from __future__ import annotations

from sfmesh.v1 import artifact_pb2, instance_pb2, records_pb2

from services.api.artifacts import hard_deletes, rules

NOW = 100_000.0
DELAY = 3600.0


def _artifact(
    uuid: str = "a", *, deleted_at: float = 0.0, namespace: str = "ns"
) -> records_pb2.ArtifactRecord:
    record = rules.new_record(
        uuid=uuid,
        artifact_type=artifact_pb2.ARTIFACT_TYPE_IMAGE,
        source_url="https://example.com/x",
        namespace=namespace,
        name="x",
        now=1.0,
    )
    record.versions.add(index=1, blob_uuid=f"{uuid}-blob")
    if deleted_at:
        rules.mark_deleted(record, deleted_at)
    return record


def _blob(
    uuid: str = "b",
    *,
    state: artifact_pb2.BlobState = artifact_pb2.BLOB_STATE_DELETED,
    references: int = 0,
    deleted_at: float = NOW - DELAY - 1,
) -> records_pb2.BlobRecord:
    blob = artifact_pb2.Blob(uuid=uuid, state=state, reference_count=references)
    return records_pb2.BlobRecord(blob=blob, deleted_at=deleted_at)


def test_an_artifact_goes_once_deleted_for_longer_than_the_delay() -> None:
    assert hard_deletes.artifact_removable(_artifact(deleted_at=NOW - DELAY - 1), NOW, DELAY, set())
    assert not hard_deletes.artifact_removable(_artifact(deleted_at=NOW - DELAY), NOW, DELAY, set())
    assert not hard_deletes.artifact_removable(_artifact(deleted_at=NOW - 5), NOW, DELAY, set())
    assert not hard_deletes.artifact_removable(_artifact(), NOW, DELAY, set())  # live


def test_an_artifact_in_error_or_deleted_at_no_known_time_stays() -> None:
    failed = _artifact()
    failed.artifact.state = artifact_pb2.ARTIFACT_STATE_ERROR
    assert not hard_deletes.artifact_removable(failed, NOW, 0.0, set())
    unknown = _artifact(deleted_at=NOW - DELAY - 1)
    unknown.deleted_at = 0
    assert not hard_deletes.artifact_removable(unknown, NOW, 0.0, set())


def test_an_artifact_an_instance_names_stays() -> None:
    old = _artifact(deleted_at=1.0)
    assert not hard_deletes.artifact_removable(old, NOW, DELAY, {"a"})


def test_a_blob_goes_when_deleted_long_enough_and_named_by_nothing() -> None:
    assert hard_deletes.blob_removable(_blob(), NOW, DELAY, set())
    assert not hard_deletes.blob_removable(_blob(), NOW, DELAY, {"b"})
    assert not hard_deletes.blob_removable(_blob(deleted_at=NOW - 10), NOW, DELAY, set())
    assert not hard_deletes.blob_removable(_blob(deleted_at=0.0), NOW, DELAY, set())
    assert not hard_deletes.blob_removable(_blob(references=1), NOW, DELAY, set())
    for state in (
        artifact_pb2.BLOB_STATE_INITIAL,
        artifact_pb2.BLOB_STATE_CREATED,
        artifact_pb2.BLOB_STATE_ERROR,
    ):
        assert not hard_deletes.blob_removable(_blob(state=state), NOW, DELAY, set())


def test_a_blob_record_outlives_the_node_agents_file_grace() -> None:
    """A node agent removes a file with no record once the file is older
    than its grace: the record must not go sooner after the deletion."""
    wait = hard_deletes.blob_wait(60.0, DELAY)
    assert wait == DELAY
    deleted_a_minute_ago = _blob(deleted_at=NOW - 61)
    assert not hard_deletes.blob_removable(deleted_a_minute_ago, NOW, wait, set())
    assert hard_deletes.blob_removable(_blob(deleted_at=NOW - DELAY - 1), NOW, wait, set())
    assert hard_deletes.blob_wait(7200.0, DELAY) == 7200.0


def test_blobs_named_by_artifacts_deleted_or_not_and_by_other_blobs() -> None:
    deleted = _artifact("gone", deleted_at=5.0)
    child = _blob("child", state=artifact_pb2.BLOB_STATE_CREATED)
    child.blob.depends_on = "parent"
    child.blob.transcodes["zlib;qcow2;cluster_size"] = "transcode"
    found = hard_deletes.blob_references([_artifact("live"), deleted], [child, _blob("other")])
    assert found == {"live-blob", "gone-blob", "parent", "transcode"}


def test_instances_name_artifacts_and_blobs_in_any_state() -> None:
    live = records_pb2.InstanceRecord(
        instance=instance_pb2.Instance(uuid="i1", disks=[instance_pb2.Disk(blob_uuid="laid")]),
        disk_sources=[records_pb2.DiskSource(artifact_uuid="image"), records_pb2.DiskSource()],
    )
    deleted = records_pb2.InstanceRecord(
        instance=instance_pb2.Instance(uuid="i2", state=instance_pb2.INSTANCE_STATE_DELETED),
        disk_sources=[records_pb2.DiskSource(blob_uuid="label-blob")],
    )
    found = hard_deletes.instance_references([live, deleted])
    assert found.artifacts == {"image"}
    assert found.blobs == {"laid", "label-blob"}


def test_live_artifacts_of_a_deleted_or_missing_namespace_are_orphans() -> None:
    namespaces = {
        "ns": records_pb2.NamespaceRecord(name="ns", state="created"),
        "old": records_pb2.NamespaceRecord(name="old", state="deleted"),
    }
    assert not hard_deletes.orphaned(_artifact(namespace="ns"), namespaces)
    assert hard_deletes.orphaned(_artifact(namespace="old"), namespaces)
    assert hard_deletes.orphaned(_artifact(namespace="never"), namespaces)
    assert not hard_deletes.orphaned(_artifact(namespace="old", deleted_at=5.0), namespaces)


def test_blobs_expire_once_their_time_has_passed() -> None:
    shot = records_pb2.BlobRecord(
        blob=artifact_pb2.Blob(uuid="s", state=artifact_pb2.BLOB_STATE_CREATED),
        expires_at=NOW,
    )
    assert not hard_deletes.expired(shot, NOW - 1)
    assert hard_deletes.expired(shot, NOW)
    hard_deletes.expire(shot, NOW)
    assert shot.blob.state == artifact_pb2.BLOB_STATE_DELETED
    assert shot.deleted_at == NOW
    assert not hard_deletes.expired(shot, NOW + 1)  # once
    forever = records_pb2.BlobRecord(
        blob=artifact_pb2.Blob(uuid="f", state=artifact_pb2.BLOB_STATE_CREATED)
    )
    assert not hard_deletes.expired(forever, NOW)
