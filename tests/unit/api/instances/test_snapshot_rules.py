"""The pure rules of instance snapshots (reference §7, §11 Q8, Q19)."""

from __future__ import annotations

from sfmesh.v1 import artifact_pb2, instance_pb2, instance_service_pb2, records_pb2

from services.api.instances import snapshot_rules
from services.api.instances.snapshots import reserved_blob

INSTANCE = "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"
DISKS = [
    instance_pb2.Disk(device="vda"),
    instance_pb2.Disk(device="vdb", snapshot_ignores=True),  # the config drive
    instance_pb2.Disk(device="vdc"),
    instance_pb2.Disk(device="sda", snapshot_ignores=True),  # a cdrom
]


def test_the_first_disk_by_default() -> None:
    assert snapshot_rules.choose_devices(DISKS, device=None, every=False) == ["vda"]


def test_all_skips_cdroms_and_the_config_drive() -> None:
    assert snapshot_rules.choose_devices(DISKS, device=None, every=True) == ["vda", "vdc"]


def test_a_device_wins_over_all() -> None:
    assert snapshot_rules.choose_devices(DISKS, device="vdc", every=True) == ["vdc"]


def test_an_unknown_or_skipped_device_chooses_none() -> None:
    assert snapshot_rules.choose_devices(DISKS, device="vdz", every=False) == []
    assert snapshot_rules.choose_devices(DISKS, device="sda", every=False) == []
    assert snapshot_rules.choose_devices(DISKS, device="", every=True) == []


def test_a_uefi_instance_s_nvram_comes_with_all_or_by_name() -> None:
    choose = snapshot_rules.choose_devices
    assert choose(DISKS, device=None, every=True, uefi=True) == ["vda", "vdc", "nvram"]
    assert choose(DISKS, device="nvram", every=False, uefi=True) == ["nvram"]
    assert choose(DISKS, device=None, every=False, uefi=True) == ["vda"]  # the first disk only
    assert choose(DISKS, device="vda", every=True, uefi=True) == ["vda"]
    assert choose(DISKS, device="nvram", every=True, uefi=False) == []  # a BIOS instance has none
    assert choose(DISKS, device=None, every=True, uefi=False) == ["vda", "vdc"]


def test_a_first_disk_that_is_a_cdrom_chooses_none() -> None:
    assert snapshot_rules.choose_devices(DISKS[3:], device=None, every=False) == []


def test_source_and_name() -> None:
    assert snapshot_rules.source_url(INSTANCE, "vda") == f"sf://instance/{INSTANCE}/vda"
    assert snapshot_rules.artifact_name(INSTANCE, "vda") == f"{INSTANCE}/vda"


def _artifact(
    uuid: str,
    device: str,
    *blobs: str,
    state: int = artifact_pb2.ARTIFACT_STATE_CREATED,
    kind: int = artifact_pb2.ARTIFACT_TYPE_SNAPSHOT,
    instance: str = INSTANCE,
) -> records_pb2.ArtifactRecord:
    record = records_pb2.ArtifactRecord(
        artifact=artifact_pb2.Artifact(
            uuid=uuid,
            state=state,  # type: ignore[arg-type]
            version=6,
            artifact_type=kind,  # type: ignore[arg-type]
            source_url=f"sf://instance/{instance}/{device}",
            max_versions=3,
            namespace="ns",
        )
    )
    for index, blob in enumerate(blobs, start=1):
        record.versions.add(index=index, blob_uuid=blob)
        record.last_index = index
    return record


def _blob(uuid: str, *, created_at: float = 100.0) -> records_pb2.BlobRecord:
    record = reserved_blob(uuid, created_at, "node1", "a")
    record.blob.state = artifact_pb2.BLOB_STATE_CREATED
    record.blob.size, record.blob.sha512, record.blob.format = 42, "ab" * 64, "qcow2"
    record.blob.locations.append("node1")
    record.blob.reference_count = 1
    return record


def test_device_of_only_this_instances_snapshots() -> None:
    assert snapshot_rules.device_of(_artifact("a", "vda"), INSTANCE) == "vda"
    assert snapshot_rules.device_of(_artifact("a", "vda"), INSTANCE[:-1] + "b") is None
    image = _artifact("a", "vda", kind=artifact_pb2.ARTIFACT_TYPE_IMAGE)
    assert snapshot_rules.device_of(image, INSTANCE) is None
    assert snapshot_rules.device_of(_artifact("a", "vda/x"), INSTANCE) is None


def test_one_item_per_version_with_the_blob_fields_over_the_artifact() -> None:
    artifacts = [
        _artifact("a2", "vdc", "b3"),
        _artifact("a1", "vda", "b1", "b2"),
        _artifact("a3", "vda", "b4", state=artifact_pb2.ARTIFACT_STATE_DELETED),
        _artifact("a4", "vda", "b5", instance="another"),
    ]
    blobs = {u: _blob(u, created_at=float(i)) for i, u in enumerate(["b1", "b2", "b3", "b4"])}
    blobs["b2"].blob.metadata["k"] = "v"
    items = snapshot_rules.list_items(artifacts, blobs, INSTANCE, {"b1": ["i1"]})
    assert [(i.uuid, i.blob_uuid, i.device, i.index) for i in items] == [
        ("a1", "b1", "vda", 1),
        ("a1", "b2", "vda", 2),
        ("a2", "b3", "vdc", 1),
    ]
    first = items[0]
    assert first.state == artifact_pb2.BLOB_STATE_CREATED  # the blob's
    assert first.artifact_type == artifact_pb2.ARTIFACT_TYPE_SNAPSHOT
    assert (first.size, first.format, first.sha512) == (42, "qcow2", "ab" * 64)
    assert first.created == 0.0 and items[1].created == 1.0
    assert list(first.instances) == ["i1"] and list(first.locations) == ["node1"]
    assert first.HasField("metadata") and dict(items[1].metadata) == {"k": "v"}
    assert not first.HasField("depends_on")


def test_a_version_whose_blob_is_gone_is_skipped() -> None:
    items = snapshot_rules.list_items([_artifact("a1", "vda", "b1", "b2")], {}, INSTANCE, {})
    assert items == []


def test_the_answer_is_the_event_extra() -> None:
    reply = instance_service_pb2.SnapshotInstanceResponse()
    reply.devices["vda"].CopyFrom(
        instance_service_pb2.SnapshotDevice(
            source_url="sf://instance/x/vda", artifact_uuid="a", blob_uuid="b"
        )
    )
    assert snapshot_rules.answer_extra(reply) == {
        "vda": {"source_url": "sf://instance/x/vda", "artifact_uuid": "a", "blob_uuid": "b"}
    }


def test_a_reserved_blob_is_initial_and_empty_and_names_its_maker() -> None:
    record = reserved_blob("b", 5.0, "node1", "art")
    assert record.artifact_uuid == "art"
    assert record.blob.state == artifact_pb2.BLOB_STATE_INITIAL
    assert (record.blob.size, record.blob.version, record.created_at) == (0, 6, 5.0)
    assert record.maker_node == "node1" and list(record.blob.locations) == []
    assert record.blob.HasField("metadata") and not record.blob.HasField("sha512")
