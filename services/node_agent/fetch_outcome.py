"""What a fetched image, or a failed fetch, does to an artifact's records. Pure.

The node agent reads an artifact and the blobs it may touch, applies one of
these to copies, and writes every changed record back in one
compare-and-swap transaction (``blob_records.py``); on a conflict it reads
again and applies again. The version and reference rules themselves are
``services/common/artifact_versions.py``'s.

- A fetch whose content (sha512) is the newest version's, while that blob is
  ``created``, adopts that blob: this node becomes one of its locations, no
  version is added, and the blob takes the fetch's `modified` (the source's
  Last-Modified), so a source touched without changing is not fetched again
  at every freshness check (``freshness.py``).
- Otherwise the download becomes a blob of its own (``created``, located
  here) and, unless the artifact is deleted, its newest version: one
  reference from the version; pruned versions let go of theirs.
- The artifact is then ``created`` with no error, its source read at the
  fetch (`checked_at`); a deleted one stays deleted and gains no version
  (the blob serves the instance that asked).
- A failed fetch marks an ``initial`` or ``error`` artifact ``error`` with the
  real reason (reference §11 Q20: a later fetch may still succeed); a
  ``created`` artifact keeps its versions.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from sfmesh.v1 import artifact_pb2, records_pb2

from services.common.artifact_versions import add_version, change_references

SCHEMA_VERSION = 6
"""The blob view's schema version (Shaken Fist's)."""
CREATED = artifact_pb2.ARTIFACT_STATE_CREATED
DELETED = artifact_pb2.ARTIFACT_STATE_DELETED
BLOB_CREATED = artifact_pb2.BLOB_STATE_CREATED


class BlobUnusable(Exception):
    """A blob cannot take another reference (gone, or not created)."""


@dataclass(frozen=True)
class Fetched:
    """What one download gave."""

    blob_uuid: str
    """The blob the download was written as."""
    sha512: str
    size: int
    """Bytes."""
    fmt: str
    """"qcow2", "raw" or "iso"."""
    modified: float
    """Last-Modified at the source, or the fetch time, epoch seconds."""
    fetched_at: float
    """Epoch seconds."""


def new_blob(fetched: Fetched, node: str, now: float) -> records_pb2.BlobRecord:
    """The record of a freshly downloaded blob, whole on `node`, held by nothing yet."""
    return records_pb2.BlobRecord(
        blob=artifact_pb2.Blob(
            uuid=fetched.blob_uuid,
            state=BLOB_CREATED,
            version=SCHEMA_VERSION,
            size=fetched.size,
            modified=fetched.modified,
            fetched_at=fetched.fetched_at,
            locations=[node],
            reference_count=0,
            sha512=fetched.sha512,
            format=fetched.fmt,
        ),
        created_at=now,
    )


def located(blob: records_pb2.BlobRecord, node: str) -> None:
    """`node` holds a whole copy of `blob`."""
    if node not in blob.blob.locations:
        blob.blob.locations.append(node)


def newest_blob_uuid(artifact: records_pb2.ArtifactRecord) -> str | None:
    """The blob of the newest version; None without versions."""
    return artifact.versions[-1].blob_uuid if artifact.versions else None


def apply_fetched(
    artifact: records_pb2.ArtifactRecord,
    blobs: MutableMapping[str, records_pb2.BlobRecord],
    fetched: Fetched,
    node: str,
    now: float,
) -> str:
    """Record `fetched` (downloaded on `node`) in `artifact` and `blobs`
    (the records of its versions' blobs and of `fetched.blob_uuid` when they
    exist; a new blob is added to it). The blob the fetch stands for now:
    the adopted newest one, or the fetched one."""
    deleted = artifact.artifact.state == DELETED
    newest_uuid = None if deleted else newest_blob_uuid(artifact)
    newest = blobs.get(newest_uuid) if newest_uuid else None
    usable = newest is not None and newest.blob.state == BLOB_CREATED
    if newest is not None and usable and newest.blob.sha512 == fetched.sha512:
        located(newest, node)
        newest.blob.modified = fetched.modified
        target = newest.blob.uuid
    else:
        target = fetched.blob_uuid
        blob = blobs.get(target)
        if blob is None:
            blob = blobs[target] = new_blob(fetched, node, now)
        elif blob.blob.state != BLOB_CREATED:
            raise BlobUnusable(f"blob {target} is no longer usable")
        else:
            located(blob, node)  # a download shared by two artifacts of one URL
        if not deleted:
            newest_sha512 = newest.blob.sha512 if newest is not None and usable else ""
            change = add_version(artifact, target, fetched.sha512, newest_sha512)
            if change.added:
                change_references(blob, 1, now)
            for released in change.released:
                if released in blobs:
                    change_references(blobs[released], -1, now)
    if not deleted:
        artifact.artifact.state = CREATED
        artifact.artifact.ClearField("error_message")
        artifact.checked_at = max(artifact.checked_at, fetched.fetched_at)
    return target


def apply_failure(artifact: records_pb2.ArtifactRecord, message: str) -> bool:
    """A failed fetch of `artifact`: whether that changed it (an `initial`
    or `error` artifact becomes `error`, with `message`)."""
    view = artifact.artifact
    if view.state not in (artifact_pb2.ARTIFACT_STATE_INITIAL, artifact_pb2.ARTIFACT_STATE_ERROR):
        return False
    if view.state == artifact_pb2.ARTIFACT_STATE_ERROR and view.error_message == message:
        return False
    view.state = artifact_pb2.ARTIFACT_STATE_ERROR
    view.error_message = message
    return True


def clear_request(artifact: records_pb2.ArtifactRecord) -> None:
    """The cache request of `artifact` is answered."""
    artifact.fetch_node = ""
    artifact.fetch_requested_at = 0


def add_references(
    blobs: Mapping[str, records_pb2.BlobRecord | None], counts: Mapping[str, int], now: float
) -> None:
    """`counts[uuid]` more references on each blob of `blobs` (records read
    now; None when absent). Raises BlobUnusable when one is absent or not
    `created`: nothing may start holding a deleted blob."""
    for uuid, count in sorted(counts.items()):
        blob = blobs.get(uuid)
        if blob is None:
            raise BlobUnusable(f"blob {uuid} no longer exists")
        if blob.blob.state != BLOB_CREATED:
            state = artifact_pb2.BlobState.Name(blob.blob.state).removeprefix("BLOB_STATE_")
            raise BlobUnusable(f"blob {uuid} is {state.lower()}")
        change_references(blob, count, now)
