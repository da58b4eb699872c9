"""The artifact and blob views clients see (reference §2.2, §6.2), built from
the records. Pure.

An artifact's `index`, `blob_uuid` and `blobs` derive from its versions and
the blob records; a version whose blob record is gone is left out of
`blobs` (§2.2). `instances` is filled on single reads only: the live
instances, visible to the caller, whose laid-out disks use the blob.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sfmesh.v1 import artifact_pb2, instance_pb2, records_pb2

from services.common import instance_states as states

NO_INSTANCES: Mapping[str, Sequence[str]] = {}


def artifact_view(
    record: records_pb2.ArtifactRecord,
    blobs: Mapping[str, records_pb2.BlobRecord],
    instances: Mapping[str, Sequence[str]] = NO_INSTANCES,
) -> artifact_pb2.Artifact:
    """The artifact as clients see it; `blobs` holds the blob records by
    uuid, `instances` the instances using each blob (single reads)."""
    view = artifact_pb2.Artifact()
    view.CopyFrom(record.artifact)
    view.metadata.SetInParent()
    view.ClearField("blobs")
    view.ClearField("blob_uuid")
    view.index = 0
    if record.versions:
        newest = record.versions[-1]
        view.index = newest.index
        view.blob_uuid = newest.blob_uuid
    for version in record.versions:
        blob = blobs.get(version.blob_uuid)
        if blob is None:
            continue
        entry = view.blobs[version.index]
        entry.uuid = blob.blob.uuid
        entry.size = blob.blob.size
        entry.reference_count = blob.blob.reference_count
        if blob.blob.HasField("depends_on"):
            entry.depends_on = blob.blob.depends_on
        entry.instances.extend(instances.get(blob.blob.uuid, ()))
    return view


def blob_view(
    record: records_pb2.BlobRecord,
    instances: Sequence[str] = (),
    index: int | None = None,
) -> artifact_pb2.Blob:
    """The blob as clients see it, with the instances using it and, in a
    version list, its `index`."""
    view = artifact_pb2.Blob()
    view.CopyFrom(record.blob)
    view.metadata.SetInParent()
    del view.instances[:]
    view.instances.extend(instances)
    if index is not None:
        view.index = index
    return view


def using_blobs(instance: instance_pb2.Instance) -> list[str]:
    """The blobs a live instance's laid-out disks use, once per disk (each
    disk holds one reference); none for a deleted instance."""
    if instance.state == states.DELETED:
        return []
    return [disk.blob_uuid for disk in instance.disks if disk.HasField("blob_uuid")]


def blobs_of(records: Sequence[records_pb2.ArtifactRecord]) -> list[str]:
    """Every blob the versions of `records` name."""
    return [version.blob_uuid for record in records for version in record.versions]
