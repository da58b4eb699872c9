"""What a finished or failed snapshot copy does to the records. Pure: the
caller reads the artifact and blob records, applies one of these to copies,
and writes every changed record in one compare-and-swap transaction.

- **Made**: the reserved blob becomes `created` (size, sha512, format, this
  node its one location), the newest version of the snapshot artifact
  (one reference), and the artifact `created`. Versions pruned beyond
  `max_versions` let go of their blobs, and a thin blob so deleted lets go
  of its parent, up the chain (reference §9.3). A snapshot always adds a
  version, even when its content equals the newest one's: the client waits
  to see its reserved blob listed (`artifact_versions.add_version` without
  sha512).
- **Thin** (`depends_on` a parent blob): the new blob records its parent,
  which gains a reference held while the child lives; a parent gone or no
  longer `created` fails the copy (`ParentUnusable`).
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
    """"qcow2" for disks, "raw" for NVRAM."""
    depends_on: str = ""
    """The parent blob of a thin copy; "" for a self-contained one."""


class ParentUnusable(Exception):
    """A thin copy's parent blob is gone or no longer `created`."""


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
    blobs: Mapping[str, records_pb2.BlobRecord],
    made: Copy,
    node: str,
    now: float,
) -> Applied:
    """Record `made` on `blob` and `artifact` (None when gone), in place;
    `blobs` holds the records of the artifact's current versions' blobs,
    of a thin copy's parent and of their parents up each chain
    (``artifact_versions.ancestors_to_read``), which a prune or the new
    reference change in place too. Raises ParentUnusable."""
    view = blob.blob
    view.size, view.sha512, view.format = made.size, made.sha512, made.format
    view.modified = view.fetched_at = now
    if made.depends_on:
        view.depends_on = made.depends_on
    if artifact is None or artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED:
        view.state = Blob.BLOB_STATE_DELETED
        blob.deleted_at = now
        del view.locations[:]
        return Applied(added=False)
    if made.depends_on:
        parent = blobs.get(made.depends_on)
        if parent is None or parent.blob.state != Blob.BLOB_STATE_CREATED:
            raise ParentUnusable(f"the parent blob {made.depends_on} is gone")
        artifact_versions.change_references(parent, 1, now)
    view.state = Blob.BLOB_STATE_CREATED
    if node not in view.locations:
        view.locations.append(node)
    change = artifact_versions.add_version(artifact, made.blob_uuid)
    artifact.artifact.state = artifact_pb2.ARTIFACT_STATE_CREATED
    artifact.artifact.ClearField("error_message")
    everything = {**blobs, made.blob_uuid: blob}
    if change.added:
        artifact_versions.change_references(blob, 1, now)
    for released in change.released:
        artifact_versions.change_references_through(everything, released, -1, now)
    return Applied(added=True, index=artifact.last_index, released=tuple(change.released))
