"""The version and reference-count rules of artifacts and blobs. Pure.

Both the api (labels, deletes, max-versions) and node agents (a fetched image
becomes a version) change artifacts' versions, so the rules live here, next
to the instance state table, the other shared exception
(`services/common/README.md`). Callers read the records, apply a rule, and
write every changed record back in one compare-and-swap transaction.

- A version is an index, never reused, and a blob; each version holds one
  reference on its blob (reference §2.3, §9.3).
- Adding the blob of the newest version, or a blob with the same sha512,
  changes nothing: the newest version is the answer.
- Beyond `max_versions` the oldest versions are pruned, each letting go of
  its blob.
- A blob whose references reach 0 is `deleted`; counts never go below 0.
  A thin snapshot's blob (`depends_on` its parent) holds one reference on
  its parent while it lives, let go of when it is deleted: the cascade runs
  up the chain in the same transaction.
- A snapshot reserves its blob `initial`; a copy that fails (or will never
  end) makes it `error`, and its artifact `error` too while that is
  `initial` with no version: the artifact's first snapshot failed, and no
  later one will make it `created` (reference §2.1: `initial -> error`).
  The api (a node agent that cannot be asked) and node agents (a failed or
  abandoned copy) both apply this one rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sfmesh.v1 import artifact_pb2, records_pb2

DEFAULT_MAX_VERSIONS = 3
"""Versions an artifact keeps unless told otherwise (Shaken Fist's default)."""


@dataclass(frozen=True)
class VersionChange:
    """What adding or removing versions did to an artifact."""

    blob_uuid: str
    """The blob of the version asked about: new, or the newest kept."""
    added: bool = False
    """Whether a new version was added (False when it was a duplicate)."""
    released: Sequence[str] = field(default_factory=tuple)
    """Blobs of the versions pruned or removed, one reference each to let go of."""


def kept_versions(record: records_pb2.ArtifactRecord) -> int:
    """How many versions `record` keeps."""
    return record.artifact.max_versions or DEFAULT_MAX_VERSIONS


def add_version(
    record: records_pb2.ArtifactRecord,
    blob_uuid: str,
    sha512: str = "",
    newest_sha512: str = "",
) -> VersionChange:
    """Add `blob_uuid` (content `sha512`) as `record`'s newest version, then
    prune. `newest_sha512` is the sha512 of the current newest version's blob,
    when known. The caller adds one reference to `blob_uuid` when `added`,
    and lets go of one on each of `released`."""
    if record.versions:
        newest = record.versions[-1]
        if newest.blob_uuid == blob_uuid or (sha512 and sha512 == newest_sha512):
            return VersionChange(newest.blob_uuid)
    record.last_index += 1
    record.versions.add(index=record.last_index, blob_uuid=blob_uuid)
    return VersionChange(blob_uuid, added=True, released=prune(record))


def prune(record: records_pb2.ArtifactRecord) -> tuple[str, ...]:
    """Drop the oldest versions beyond `kept_versions`; their blobs."""
    excess = len(record.versions) - kept_versions(record)
    if excess <= 0:
        return ()
    released = tuple(version.blob_uuid for version in record.versions[:excess])
    del record.versions[:excess]
    return released


def remove_version(record: records_pb2.ArtifactRecord, index: int) -> VersionChange | None:
    """Remove the version `index`; None when there is no such version."""
    for position, version in enumerate(record.versions):
        if version.index == index:
            blob_uuid = version.blob_uuid
            del record.versions[position]
            return VersionChange(blob_uuid, released=(blob_uuid,))
    return None


def release_all(record: records_pb2.ArtifactRecord) -> tuple[str, ...]:
    """The blobs every version of `record` holds, for a delete. The versions
    stay listed (a deleted artifact shows what it held)."""
    return tuple(version.blob_uuid for version in record.versions)


def change_references(blob: records_pb2.BlobRecord, delta: int, now: float) -> str | None:
    """Add `delta` references to `blob`, at least 0; at 0 the blob is
    `deleted` (at `now`, epoch seconds). When this deleted a thin blob, the
    answer is its parent (`depends_on`), which lets go of the reference the
    child held (reference §9.3: the cascade); None otherwise."""
    view = blob.blob
    view.reference_count = max(0, view.reference_count + delta)
    if view.reference_count == 0 and view.state != artifact_pb2.BLOB_STATE_DELETED:
        view.state = artifact_pb2.BLOB_STATE_DELETED
        blob.deleted_at = now
        return view.depends_on if view.HasField("depends_on") else None
    return None


def change_references_through(
    blobs: Mapping[str, records_pb2.BlobRecord], uuid: str, delta: int, now: float
) -> list[str]:
    """`change_references` on `blobs[uuid]`, cascading: each blob it
    deletes lets go of one reference on its parent, and so on up the chain,
    through the records `blobs` holds (changed in place). The parents that
    should let go of one but are not in `blobs` are answered, for a caller
    that reads them and goes on; a blob missing from `blobs` is skipped
    (its record is gone)."""
    missing: list[str] = []
    pending = [(uuid, delta)]
    while pending:
        name, change = pending.pop()
        record = blobs.get(name)
        if record is None:
            if name != uuid:
                missing.append(name)
            continue
        parent = change_references(record, change, now)
        if parent:
            pending.append((parent, -1))
    return missing


def ancestors_to_read(blobs: Mapping[str, records_pb2.BlobRecord]) -> set[str]:
    """The parents (`depends_on`) of `blobs` that `blobs` lacks: what a
    caller reads, then asks again, until nothing is missing, before a
    change that may cascade up thin chains."""
    return {
        record.blob.depends_on
        for record in blobs.values()
        if record.blob.HasField("depends_on") and record.blob.depends_on not in blobs
    }


def fail_reservation(
    blob: records_pb2.BlobRecord,
    artifact: records_pb2.ArtifactRecord | None,
    message: str,
) -> tuple[bool, bool]:
    """A snapshot's reserved blob will not be made: `blob` becomes `error`
    when it is still `initial`, and then `artifact` (its snapshot artifact,
    None when gone) becomes `error` with `message` when it is `initial` with
    no version. Whether each changed; a blob no longer `initial` (an outcome
    was recorded already) changes neither."""
    if blob.blob.state != artifact_pb2.BLOB_STATE_INITIAL:
        return False, False
    blob.blob.state = artifact_pb2.BLOB_STATE_ERROR
    if artifact is None or artifact.versions:
        return True, False
    view = artifact.artifact
    if view.state != artifact_pb2.ARTIFACT_STATE_INITIAL:
        return True, False
    view.state = artifact_pb2.ARTIFACT_STATE_ERROR
    view.error_message = message
    return True, True
