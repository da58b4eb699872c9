"""The pure parts of services/api/transfers/conversion.py and blob_data.py
and sweeper.py: a sealed blob's record, its first write, the read's head,
when an upload is abandoned."""

from __future__ import annotations

from sfmesh.v1 import artifact_pb2, node_agent_service_pb2, records_pb2

from services.api.transfers import conversion
from services.api.transfers.blob_data import head_of
from services.api.transfers.ranges import Span
from services.api.transfers.sweeper import is_abandoned

SEALED = node_agent_service_pb2.SealUploadResponse(size=512, sha512="ab" * 64, format="raw")


def test_a_sealed_blob_is_created_on_its_node_and_held_by_nothing() -> None:
    record = conversion.sealed_blob("b", SEALED, "node-1", 7.0)
    blob = record.blob
    assert (blob.uuid, blob.state, blob.size, blob.sha512, blob.format) == (
        "b",
        artifact_pb2.BLOB_STATE_CREATED,
        512,
        "ab" * 64,
        "raw",
    )
    assert (list(blob.locations), blob.reference_count, blob.version) == (["node-1"], 0, 6)


def test_a_sealed_blob_is_written_with_its_reference_and_left_as_it_was() -> None:
    record = conversion.sealed_blob("b", SEALED, "node-1", 7.0)
    for _ in range(2):  # a retried transaction writes the same
        written = records_pb2.BlobRecord.FromString(conversion._new_blob_put(record, 1, 8.0).value)
        assert written.blob.reference_count == 1
        assert written.blob.state == artifact_pb2.BLOB_STATE_CREATED
    assert record.blob.reference_count == 0


def test_a_sealed_blob_no_version_holds_is_written_deleted() -> None:
    record = conversion.sealed_blob("b", SEALED, "node-1", 7.0)
    written = records_pb2.BlobRecord.FromString(conversion._new_blob_put(record, 0, 8.0).value)
    assert (written.blob.state, written.deleted_at) == (artifact_pb2.BLOB_STATE_DELETED, 8.0)
    duplicate = conversion.discarded(conversion.sealed_blob("c", SEALED, "n", 7.0), 9.0)
    assert (duplicate.blob.state, duplicate.deleted_at) == (artifact_pb2.BLOB_STATE_DELETED, 9.0)


def test_a_read_says_its_status_and_range_in_its_head() -> None:
    assert head_of(Span(0, 10, size=10)) == (("accept-ranges", "bytes"),)
    assert head_of(Span(5, 5, partial=True, size=10)) == (
        ("accept-ranges", "bytes"),
        ("x-http-code", "206"),
        ("content-range", "bytes 5-9/10"),
    )


def test_an_upload_is_abandoned_after_its_idle_time() -> None:
    assert is_abandoned(0.0, 101.0, 100.0)
    assert not is_abandoned(0.0, 100.0, 100.0)
