"""What a finished or failed snapshot copy does to the records. Pure: the
caller reads the artifact and blob records, applies one of these to copies,
and writes every changed record in one compare-and-swap transaction.

- **Made**: the reserved blob becomes `created` (size, sha512, format, this
  node its one location), the newest version of the snapshot artifact
  (one reference), and the artifact `created`. Versions pruned beyond
  `max_versions` let go of their blobs. A snapshot always adds a version,
  even when its content equals the newest one's: the client waits to see
  its reserved blob listed (`artifact_versions.add_version` without sha512).
- **Artifact gone or deleted meanwhile** (reference §7.1, §11 Q12): the blob
  becomes `deleted`, no version is added, and its file is removed.
- **Failed**: ``reservations.py`` (the rule is
  ``artifact_versions.fail_reservation``, shared with the api).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sfmesh.v1 import artifact_pb2, records_pb2

from services.common import artifact_versions

Blob = artifact_pb2.BlobState


@dataclass(frozen=True)
class Copy:
    """A copy made and adopted as its blob's file on this node."""

    blob_uuid: str
    size: int
    """Bytes."""
    sha512: str
    """Hex sha512."""
    format: str
    """"qcow2"."""


@dataclass(frozen=True)
class Applied:
    """What applying a copy decided."""

    added: bool
    """Whether the blob became a version; False: it was marked deleted."""
    index: int = 0
    """The new version's index, when added."""
    released: tuple[str, ...] = ()
    """Blobs of pruned versions, one reference let go of each."""


def apply_made(
    artifact: records_pb2.ArtifactRecord | None,
    blob: records_pb2.BlobRecord,
    released_blobs: Mapping[str, records_pb2.BlobRecord],
    made: Copy,
    node: str,
    now: float,
) -> Applied:
    """Record `made` on `blob` and `artifact` (None when gone), in place;
    `released_blobs` holds the records of the artifact's current versions'
    blobs, which a prune changes in place too."""
    view = blob.blob
    view.size, view.sha512, view.format = made.size, made.sha512, made.format
    view.modified = view.fetched_at = now
    if artifact is None or artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED:
        view.state = Blob.BLOB_STATE_DELETED
        blob.deleted_at = now
        del view.locations[:]
        return Applied(added=False)
    view.state = Blob.BLOB_STATE_CREATED
    if node not in view.locations:
        view.locations.append(node)
    change = artifact_versions.add_version(artifact, made.blob_uuid)
    artifact.artifact.state = artifact_pb2.ARTIFACT_STATE_CREATED
    if change.added:
        artifact_versions.change_references(blob, 1, now)
    for released in change.released:
        if released == made.blob_uuid:
            artifact_versions.change_references(blob, -1, now)
        elif released in released_blobs:
            artifact_versions.change_references(released_blobs[released], -1, now)
    return Applied(added=True, index=artifact.last_index, released=tuple(change.released))
