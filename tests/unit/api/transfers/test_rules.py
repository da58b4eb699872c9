"""services/api/transfers/rules.py: uploads' owners, truncates, and the
checks of a conversion in their order."""

from __future__ import annotations

import pytest
from sfmesh.v1 import artifact_pb2, transfer_service_pb2

from services.api.transfers import rules
from services.common import errors

Request = transfer_service_pb2.ConvertUploadRequest


def test_a_new_upload_is_empty_created_and_its_namespaces() -> None:
    record = rules.new_upload("u", "ns", "node-1", 12.5)
    view = rules.upload_view(record)
    assert (view.uuid, view.state, view.version, view.node) == ("u", "created", 3, "node-1")
    assert (view.created_at, view.size, record.updated_at) == (12.5, 0, 12.5)
    assert view.HasField("metadata")
    assert record.namespace == "ns"


def test_only_the_owner_and_system_use_an_upload() -> None:
    record = rules.new_upload("u", "ns", "node-1", 0)
    assert rules.check_owner(record, "ns") is record
    assert rules.check_owner(record, "system") is record
    for stranger in ("other", "ns2"):
        with pytest.raises(errors.NotFound, match=r"^upload not found$"):
            rules.check_owner(record, stranger)
    with pytest.raises(errors.NotFound, match=r"^upload not found$"):
        rules.check_owner(None, "ns")


def test_a_truncate_stays_within_the_upload() -> None:
    rules.check_truncate(10, 0)
    rules.check_truncate(10, 10)
    for offset in (11, -1):
        with pytest.raises(errors.InvalidArgument):
            rules.check_truncate(10, offset)


def test_an_empty_upload_is_not_converted() -> None:
    with pytest.raises(errors.Conflict):
        rules.check_not_empty(rules.new_upload("u", "ns", "n", 0))


def test_a_conversion_defaults_to_an_image_of_the_callers_source() -> None:
    wanted = rules.check_convert(Request(artifact_name="disk.img", upload_uuid="u"), "me", "them")
    assert wanted.artifact_type == artifact_pb2.ARTIFACT_TYPE_IMAGE
    assert wanted.source_url == "sf://upload/me/disk.img"  # the caller's, not the target's
    assert (wanted.target, wanted.upload_uuid, wanted.blob_uuid) == ("them", "u", "")


def test_a_conversion_keeps_a_given_source_and_type() -> None:
    request = Request(
        artifact_name="x", blob_uuid="b", source_url="https://example.com/x", artifact_type="other"
    )
    wanted = rules.check_convert(request, "me", "me")
    assert wanted.artifact_type == artifact_pb2.ARTIFACT_TYPE_OTHER
    assert (wanted.source_url, wanted.blob_uuid) == ("https://example.com/x", "b")


@pytest.mark.parametrize(
    ("request_", "caller", "error", "message"),
    [
        (
            Request(artifact_name="x", upload_uuid="u", blob_uuid="b", artifact_type="nope"),
            "me",
            errors.InvalidArgument,
            "only specify one of upload_uuid and blob_uuid",
        ),
        (Request(artifact_name="x"), "me", errors.InvalidArgument, "specify one of"),
        (
            Request(artifact_name="a/b", upload_uuid="u", artifact_type="label", shared=True),
            "me",
            errors.InvalidArgument,
            "invalid artifact type specified",
        ),
        (
            Request(artifact_name="a/b", upload_uuid="u", shared=True),
            "me",
            errors.PermissionDenied,
            "only the system namespace can create shared artifacts",
        ),
        (Request(artifact_name="a/b", upload_uuid="u"), "me", errors.InvalidArgument, "name"),
        (Request(artifact_name="a b", upload_uuid="u"), "me", errors.InvalidArgument, "name"),
        (Request(artifact_name="x" * 256, upload_uuid="u"), "me", errors.InvalidArgument, "255"),
    ],
)
def test_a_conversion_is_refused_by_its_first_fault(
    request_: transfer_service_pb2.ConvertUploadRequest,
    caller: str,
    error: type[errors.SfmeshError],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        rules.check_convert(request_, caller, caller)


def test_system_may_share() -> None:
    wanted = rules.check_convert(
        Request(artifact_name="x", upload_uuid="u", shared=True), "system", "system"
    )
    assert wanted.shared


def test_only_created_blobs_are_read_or_added() -> None:
    rules.check_blob_created(artifact_pb2.Blob(uuid="b", state=artifact_pb2.BLOB_STATE_CREATED))
    with pytest.raises(errors.Conflict, match="state=deleted"):
        rules.check_blob_created(artifact_pb2.Blob(uuid="b", state=artifact_pb2.BLOB_STATE_DELETED))
