"""The pure rules of instance snapshots (reference §7, §11 Q8, Q19): which
disks a request copies, the snapshot artifact's source and name, the answer
of a snapshot request, and the items of the snapshot list. No I/O.

- Disks: `device` names one (an unknown name, or a disk snapshots skip,
  chooses none); `all` every disk; neither, the first disk only. CD-ROMs and
  the config drive (`snapshot_ignores`) are never copied. A UEFI instance's
  NVRAM is the device `nvram`: chosen by `all` (after the disks, §7.1) and
  by `device: "nvram"`.
- One snapshot artifact per device, `sf://instance/<uuid>/<device>`, named
  `<uuid>/<device>`, in the instance's namespace.
- The list has one item per version of each live snapshot artifact of the
  instance: a deleted artifact is no snapshot of it any more (its record
  stays readable by UUID under /artifacts until purged), and a version whose
  blob record is gone is skipped (Q19).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sfmesh.v1 import artifact_pb2, instance_pb2, instance_service_pb2, records_pb2

SNAPSHOT = artifact_pb2.ARTIFACT_TYPE_SNAPSHOT
NVRAM = "nvram"
"""The device name of a UEFI instance's variables (§7.1)."""


def choose_devices(
    disks: Sequence[instance_pb2.Disk], *, device: str | None, every: bool, uefi: bool = False
) -> list[str]:
    """The device names a snapshot request copies, in disk order, then a
    UEFI instance's `nvram` (§7.1)."""
    if device is not None:
        chosen = [disk for disk in disks if disk.device == device]
    elif every:
        chosen = list(disks)
    else:
        chosen = list(disks[:1])
    names = [disk.device for disk in chosen if not disk.snapshot_ignores]
    if uefi and (every if device is None else device == NVRAM):
        names.append(NVRAM)
    return names


def source_url(instance_uuid: str, device: str) -> str:
    """The source of an instance device's snapshot artifact (§2.6)."""
    return f"sf://instance/{instance_uuid}/{device}"


def artifact_name(instance_uuid: str, device: str) -> str:
    """The stored name of a snapshot artifact (§2.4)."""
    return f"{instance_uuid}/{device}"


def device_of(record: records_pb2.ArtifactRecord, instance_uuid: str) -> str | None:
    """The device a snapshot artifact copies, when it is one of this
    instance's; None otherwise."""
    artifact = record.artifact
    prefix = source_url(instance_uuid, "")
    if artifact.artifact_type != SNAPSHOT or not artifact.source_url.startswith(prefix):
        return None
    device = artifact.source_url[len(prefix) :]
    return device if device and "/" not in device else None


def answer_extra(reply: instance_service_pb2.SnapshotInstanceResponse) -> dict[str, object]:
    """The answer as the `snapshot` event's extra: the REST body (§7.1)."""
    return {
        device: {
            "source_url": started.source_url,
            "artifact_uuid": started.artifact_uuid,
            "blob_uuid": started.blob_uuid,
        }
        for device, started in sorted(reply.devices.items())
    }


def list_items(
    artifacts: Sequence[records_pb2.ArtifactRecord],
    blobs: Mapping[str, records_pb2.BlobRecord],
    instance_uuid: str,
    instances: Mapping[str, Sequence[str]],
) -> list[instance_service_pb2.InstanceSnapshot]:
    """The snapshot list of an instance (§7.2, Q8, Q19): per live snapshot
    artifact of it, in UUID order, one item per version, oldest first;
    `blobs` holds the blob records by uuid, `instances` the instances the
    caller sees using each blob."""
    items = []
    for record in sorted(artifacts, key=lambda r: r.artifact.uuid):
        device = device_of(record, instance_uuid)
        if device is None or record.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED:
            continue
        for version in record.versions:
            blob = blobs.get(version.blob_uuid)
            if blob is not None:
                items.append(_item(record, version, blob, device, instances))
    return items


def _item(
    record: records_pb2.ArtifactRecord,
    version: records_pb2.VersionRecord,
    blob_record: records_pb2.BlobRecord,
    device: str,
    instances: Mapping[str, Sequence[str]],
) -> instance_service_pb2.InstanceSnapshot:
    artifact, blob = record.artifact, blob_record.blob
    item = instance_service_pb2.InstanceSnapshot(
        uuid=artifact.uuid,
        state=blob.state,
        version=blob.version,
        artifact_type=artifact.artifact_type,
        source_url=artifact.source_url,
        max_versions=artifact.max_versions,
        namespace=artifact.namespace,
        shared=artifact.shared,
        blob_uuid=blob.uuid,
        size=blob.size,
        modified=blob.modified,
        fetched_at=blob.fetched_at,
        locations=blob.locations,
        reference_count=blob.reference_count,
        instances=instances.get(blob.uuid, ()),
        format=blob.format,
        device=device,
        created=blob_record.created_at,
        index=version.index,
    )
    item.metadata.CopyFrom(blob.metadata)
    item.metadata.SetInParent()  # {} rather than null
    item.transcodes.update(blob.transcodes)
    if blob.HasField("depends_on"):
        item.depends_on = blob.depends_on
    if blob.HasField("sha512"):
        item.sha512 = blob.sha512
    if blob.HasField("last_used"):
        item.last_used = blob.last_used
    return item
