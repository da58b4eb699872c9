"""Instances whose records carry disk sources (as the api writes them once it
resolves bases to artifacts and blobs) boot real domains: one from an image
artifact the node agent fetches from a loopback URL, one from the blob that
fetch made. The records end as the node agent should leave them: one blob,
one version, a reference per version and per disk. The records are written
straight to the mesh's etcd, placed on its node."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest
from sfmesh.v1 import artifact_pb2, instance_pb2, records_pb2

from devmesh.mesh import Mesh
from guests.bootsector import MARKER, boot_sector
from services.common import instance_states as states
from services.common.instance_store import InstanceStore
from services.common.store import Put, Store, key
from tests.e2e.test_vms import view, wait_for

if TYPE_CHECKING:
    from tests.conftest import ImageServer

pytestmark = pytest.mark.slow
T = TypeVar("T")


def in_etcd(mesh: Mesh, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` with a store on the mesh's etcd."""

    async def run() -> T:
        store = Store(f"127.0.0.1:{mesh.ports.etcd_client}")
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def read(mesh: Mesh, kind: str, name: str, message: type[T]) -> T:
    async def get(store: Store) -> T:
        item = await store.get(key(kind, name))
        assert item is not None, (kind, name)
        return message.FromString(item.value)  # type: ignore[attr-defined,no-any-return]

    return in_etcd(mesh, get)


def place(mesh: Mesh, source: records_pb2.DiskSource, base: str = "") -> str:
    """An instance record of one 1 GiB disk from `source`, placed on the
    mesh's node in state initial, as the api would write it; its uuid."""
    name = str(uuid.uuid4())
    spec = instance_pb2.DiskSpec(size=1, base=base) if base else instance_pb2.DiskSpec(size=1)
    record = records_pb2.InstanceRecord(
        instance=instance_pb2.Instance(
            uuid=name,
            name=f"vm-source-{name[:8]}",
            namespace="system",
            state=states.INITIAL,  # type: ignore[arg-type]
            node=mesh.node_name,
            cpus=1,
            memory=128,
            disk_spec=[spec],
            configdrive=instance_pb2.CONFIG_DRIVE_NONE,
        ),
        created_at=time.time(),
        disk_sources=[source],
    )

    async def create(store: Store) -> None:
        assert await InstanceStore(store).create(record)

    in_etcd(mesh, create)
    return name


def settled(rest: httpx.Client, name: str) -> dict[str, Any]:
    return dict(wait_for(lambda: (v := view(rest, name))["state"] in ("created", "error") and v))


def test_instances_boot_from_an_artifact_and_from_its_blob(
    rest: httpx.Client, mesh: Mesh, image_server: ImageServer
) -> None:
    url = image_server.publish(f"artifact-{uuid.uuid4().hex}.raw", boot_sector())
    artifact_uuid = str(uuid.uuid4())
    artifact = records_pb2.ArtifactRecord(
        artifact=artifact_pb2.Artifact(
            uuid=artifact_uuid,
            state=artifact_pb2.ARTIFACT_STATE_INITIAL,
            artifact_type=artifact_pb2.ARTIFACT_TYPE_IMAGE,
            source_url=url,
            namespace="system",
            max_versions=3,
        ),
        created_at=time.time(),
    )

    async def write(store: Store) -> None:
        put = Put(key("artifact", artifact_uuid), artifact.SerializeToString(), 0)
        assert await store.commit([put])

    in_etcd(mesh, write)
    first = place(mesh, records_pb2.DiskSource(artifact_uuid=artifact_uuid), base=url)
    instance = settled(rest, first)
    assert instance["state"] == "created", instance.get("error_message")
    wait_for(lambda: MARKER in rest.get(f"/instances/{first}/consoledata").content, timeout=10)

    fetched = read(mesh, "artifact", artifact_uuid, records_pb2.ArtifactRecord)
    assert fetched.artifact.state == artifact_pb2.ARTIFACT_STATE_CREATED
    assert [version.index for version in fetched.versions] == [1]
    blob_uuid = fetched.versions[0].blob_uuid
    assert instance["disks"][0]["blob_uuid"] == blob_uuid
    blob = read(mesh, "blob", blob_uuid, records_pb2.BlobRecord).blob
    assert list(blob.locations) == [mesh.node_name]
    assert blob.reference_count == 2  # the version and the disk
    assert (mesh.state_dir / "blobs" / blob_uuid[:2] / blob_uuid).read_bytes() == boot_sector()

    second = place(mesh, records_pb2.DiskSource(blob_uuid=blob_uuid), base=f"sf://blob/{blob_uuid}")
    instance = settled(rest, second)
    assert instance["state"] == "created", instance.get("error_message")
    wait_for(lambda: MARKER in rest.get(f"/instances/{second}/consoledata").content, timeout=10)
    assert instance["disks"][0]["blob_uuid"] == blob_uuid
    assert read(mesh, "blob", blob_uuid, records_pb2.BlobRecord).blob.reference_count == 3
    assert image_server.hits(url.rpartition("/")[2]) == 1  # fetched once

    missing = str(uuid.uuid4())
    third = place(mesh, records_pb2.DiskSource(blob_uuid=missing), base=f"sf://blob/{missing}")
    instance = settled(rest, third)
    assert instance["state"] == "error"
    assert instance["error_message"] == f"blob {missing} not found"

    for name in (first, second, third):
        assert rest.delete(f"/instances/{name}").status_code == 200
    for name in (first, second, third):
        deleted(rest, name)


def deleted(rest: httpx.Client, name: str) -> None:
    wait_for(lambda: view(rest, name)["state"] == "deleted")
