"""Which artifact and blob records may be forgotten, and which artifacts a
namespace's end takes (reference §9.7). Pure: `sweeper.py` reads the records
and acts.

- A record `deleted` for longer than a delay is hard-deleted (Shaken Fist's
  CLEANER_DELAY, 3600 s), only while nothing names it any more: an artifact
  while no instance record names it as a disk's source; a blob while no
  artifact record keeps it as a version (a deleted artifact's versions stay
  listed until the artifact goes), no instance record uses it for a disk,
  no other blob depends on it or is its transcode, and no reference is
  counted on it. Records of instances stay until the instance purge
  removes them, so a deleted instance holds what it named until then.
- A blob's record waits at least the node agents' grace for files of
  deleted blobs as well: a node agent removes a file whose blob has no
  record once the file is older than that grace (an upload's file lands
  before its record), so a record gone sooner would make a file look
  orphaned before its grace.
- A record deleted without a time of deletion is kept (nothing writes one).
- Uploads are not deleted records: a conversion or the abandoned-upload
  sweep removes them outright (`transfers/sweeper.py`), as Shaken Fist
  exempts them from this rule.
- A blob with an expiry (a screenshot) is deleted once it has passed;
  its record is then forgotten as any deleted blob's.
- A namespace is gone when its record is deleted or missing; its live
  artifacts are deleted (`deletion.BY_NAMESPACE`), whatever stopped the
  namespace's own delete from taking them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from sfmesh.v1 import artifact_pb2, records_pb2

from services.api.artifacts import rules
from services.api.namespaces import rules as namespace_rules

DELETED_BLOB = artifact_pb2.BLOB_STATE_DELETED
DELETED_ARTIFACT = artifact_pb2.ARTIFACT_STATE_DELETED


@dataclass(frozen=True)
class InstanceReferences:
    """What instance records name."""

    artifacts: frozenset[str]
    """Artifacts named as a disk's source."""
    blobs: frozenset[str]
    """Blobs a disk was built from or resolved to."""


def instance_references(records: Iterable[records_pb2.InstanceRecord]) -> InstanceReferences:
    """Every artifact and blob the instance records name, whatever their
    state (a deleted instance's record names them until it is purged)."""
    artifacts: set[str] = set()
    blobs: set[str] = set()
    for record in records:
        for source in record.disk_sources:
            if source.artifact_uuid:
                artifacts.add(source.artifact_uuid)
            if source.blob_uuid:
                blobs.add(source.blob_uuid)
        blobs.update(disk.blob_uuid for disk in record.instance.disks if disk.blob_uuid)
    return InstanceReferences(frozenset(artifacts), frozenset(blobs))


def blob_references(
    artifacts: Iterable[records_pb2.ArtifactRecord], blobs: Iterable[records_pb2.BlobRecord]
) -> set[str]:
    """Every blob a version of `artifacts` keeps, or one of `blobs` depends on
    or has as a transcode."""
    found = {version.blob_uuid for record in artifacts for version in record.versions}
    for record in blobs:
        if record.blob.depends_on:
            found.add(record.blob.depends_on)
        found.update(record.blob.transcodes.values())
    return found


def deleted_for(deleted_at: float, now: float) -> float:
    """Seconds since a deletion at `deleted_at`; none when it is unknown (0)."""
    return now - deleted_at if deleted_at > 0 else 0.0


def artifact_removable(
    record: records_pb2.ArtifactRecord, now: float, delay: float, named: Set[str]
) -> bool:
    """Whether an artifact's record may be forgotten: deleted for longer
    than `delay` seconds and not among the artifacts instances `named`."""
    artifact = record.artifact
    return (
        artifact.state == DELETED_ARTIFACT
        and deleted_for(record.deleted_at, now) > delay
        and artifact.uuid not in named
    )


def blob_wait(delay: float, grace: float) -> float:
    """How long a deleted blob's record stays: the delay, and never less
    than the node agents' grace for its files."""
    return max(delay, grace)


def blob_removable(
    record: records_pb2.BlobRecord, now: float, wait: float, named: Set[str]
) -> bool:
    """Whether a blob's record may be forgotten: deleted for longer than
    `wait` seconds (`blob_wait`), no reference counted, and not `named` by
    an artifact, an instance or another blob."""
    blob = record.blob
    return (
        blob.state == DELETED_BLOB
        and blob.reference_count == 0
        and deleted_for(record.deleted_at, now) > wait
        and blob.uuid not in named
    )


def expired(record: records_pb2.BlobRecord, now: float) -> bool:
    """Whether a blob with an expiry has reached it and is not deleted yet."""
    return 0 < record.expires_at <= now and record.blob.state != DELETED_BLOB


def expire(record: records_pb2.BlobRecord, now: float) -> None:
    """Make an expired blob `deleted` as of `now`, in place."""
    record.blob.state = DELETED_BLOB
    record.deleted_at = now


def namespace_gone(namespace: str, records: Mapping[str, records_pb2.NamespaceRecord]) -> bool:
    """Whether namespace `namespace` is deleted or has no record."""
    return not namespace_rules.is_live(records.get(namespace))


def orphaned(
    record: records_pb2.ArtifactRecord, namespaces: Mapping[str, records_pb2.NamespaceRecord]
) -> bool:
    """Whether a live artifact belongs to a namespace that is gone."""
    return rules.is_active(record) and namespace_gone(record.artifact.namespace, namespaces)
