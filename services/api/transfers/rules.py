"""Pure rules of uploads and of turning them into artifacts (reference §3.4,
§4, with §11 Q3, Q11, Q17, Q18). No I/O.

- An upload belongs to the namespace that started it; that namespace and
  system use it, everyone else is told `upload not found` (Shaken Fist lets
  anyone who knows the UUID append, truncate or convert: Q3).
- A truncate cuts back to at most the upload's size (Q18: upstream 500s).
- A conversion is checked whole before anything is written or sealed
  (`check_convert`), in this order: exactly one of `upload_uuid` and
  `blob_uuid`, the artifact type, `shared` from system only, the name.
  (The target namespace is checked before these, the upload or blob after.)
"""

from __future__ import annotations

from dataclasses import dataclass

from sfmesh.v1 import artifact_pb2, records_pb2, transfer_service_pb2

from services.api import sizes
from services.api.artifacts import sources
from services.api.visibility import SYSTEM
from services.common import errors
from services.common.wire import wire_name

VIEW_VERSION = 3
"""The upload view's schema version (Shaken Fist's)."""
CREATED = "created"
ARTIFACT_NAME_CHARS = 255
TYPES = {"image": artifact_pb2.ARTIFACT_TYPE_IMAGE, "other": artifact_pb2.ARTIFACT_TYPE_OTHER}
"""The artifact types an upload may become, by their wire names."""


def new_upload(uuid: str, namespace: str, node: str, now: float) -> records_pb2.UploadRecord:
    """An empty upload of `namespace` whose bytes live on `node`."""
    upload = transfer_service_pb2.Upload(
        uuid=uuid, state=CREATED, version=VIEW_VERSION, node=node, created_at=now, size=0
    )
    upload.metadata.SetInParent()
    return records_pb2.UploadRecord(upload=upload, namespace=namespace, updated_at=now)


def upload_view(record: records_pb2.UploadRecord) -> transfer_service_pb2.Upload:
    """The upload as clients see it."""
    view = transfer_service_pb2.Upload()
    view.CopyFrom(record.upload)
    view.metadata.SetInParent()
    return view


def upload_not_found() -> errors.NotFound:
    """The one answer for an upload that is missing or not the caller's."""
    return errors.NotFound("upload not found", reason="UPLOAD_NOT_FOUND")


def check_owner(record: records_pb2.UploadRecord | None, caller: str) -> records_pb2.UploadRecord:
    """`record`, when the caller may use it: its own namespace or system."""
    if record is None or caller not in (record.namespace, SYSTEM):
        raise upload_not_found()
    return record


def check_truncate(size: int, offset: int) -> None:
    """A truncate of an upload of `size` bytes to `offset` (Q18)."""
    if offset < 0 or offset > size:
        raise errors.InvalidArgument(
            f"offset {offset} is not within the upload's {size} bytes", reason="BAD_OFFSET"
        )


def check_not_empty(record: records_pb2.UploadRecord) -> None:
    """An upload becomes a blob only with bytes in it (Q18: upstream 500s)."""
    if record.upload.size == 0:
        raise errors.Conflict(
            f"upload {record.upload.uuid} is empty: append to it first", reason="UPLOAD_EMPTY"
        )


@dataclass(frozen=True)
class Conversion:
    """A checked conversion request."""

    name: str
    """The artifact's name."""
    artifact_type: artifact_pb2.ArtifactType
    source_url: str
    target: str
    """The namespace that owns the artifact."""
    shared: bool
    upload_uuid: str
    """The upload to seal, or ""."""
    blob_uuid: str
    """The blob to add, or ""."""


def upload_source_url(caller: str, name: str) -> str:
    """The default source URL of an upload: the caller's namespace, even
    when the artifact goes to another (§2.6)."""
    return f"{sources.SF_PREFIX}upload/{caller}/{name}"


def check_convert(
    request: transfer_service_pb2.ConvertUploadRequest, caller: str, target: str
) -> Conversion:
    """The conversion `request` asks for, into namespace `target` (already
    checked to trust the caller)."""
    upload_uuid = request.upload_uuid if request.HasField("upload_uuid") else ""
    blob_uuid = request.blob_uuid if request.HasField("blob_uuid") else ""
    if upload_uuid and blob_uuid:
        raise errors.InvalidArgument("only specify one of upload_uuid and blob_uuid")
    if not upload_uuid and not blob_uuid:
        raise errors.InvalidArgument("specify one of upload_uuid and blob_uuid")
    wire_type = request.artifact_type if request.HasField("artifact_type") else ""
    artifact_type = TYPES.get(wire_type or "image")
    if artifact_type is None:
        raise errors.InvalidArgument("invalid artifact type specified", reason="BAD_ARTIFACT_TYPE")
    if request.shared and caller != SYSTEM:
        raise errors.PermissionDenied(
            "only the system namespace can create shared artifacts", reason="NOT_SYSTEM"
        )
    name = request.artifact_name
    sizes.check_length("artifact_name", name, ARTIFACT_NAME_CHARS)
    if not sources.SEGMENT.fullmatch(name):
        raise errors.InvalidArgument(
            f'"{name}" is not an artifact name: one path segment, no spaces',
            reason="BAD_ARTIFACT_NAME",
        )
    source_url = request.source_url if request.HasField("source_url") else ""
    sizes.check_length("source_url", source_url, sizes.URL_CHARS)
    return Conversion(
        name=name,
        artifact_type=artifact_type,
        source_url=source_url or upload_source_url(caller, name),
        target=target,
        shared=request.shared,
        upload_uuid=upload_uuid,
        blob_uuid=blob_uuid,
    )


def check_blob_created(blob: artifact_pb2.Blob) -> None:
    """Only a `created` blob is read or added as a version (409 otherwise)."""
    if blob.state != artifact_pb2.BLOB_STATE_CREATED:
        state = wire_name(artifact_pb2.BlobState.DESCRIPTOR, blob.state)
        raise errors.Conflict(
            f"blob {blob.uuid} is not ready (state={state})", reason="BLOB_NOT_READY"
        )
