"""services/node_agent/disk_images.py, blob_records.py and the reconciler's
`created` write against a real etcd and a real loopback HTTP server: an
artifact's fetch becomes one blob and one version, identical content adds no
version, changed content does with a higher index, pruning lets go of old
blobs, a failed fetch marks the artifact `error` with the reason, a cache
request is answered (and followed through a watch), and the `created` write
adds the disks' references."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sfmesh.v1 import artifact_pb2, instance_pb2, records_pb2

from services.common import instance_states as states
from services.common.instance_store import InstanceStore
from services.common.store import Put, Store, key
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.cache_requests import CacheRequests
from services.node_agent.disk_images import DiskImages
from services.node_agent.fetch_outcome import BlobUnusable
from services.node_agent.fetch_policy import Endpoint, parse_networks
from services.node_agent.images import ImageCache, ImageError
from services.node_agent.reconciler import write_created

if TYPE_CHECKING:
    from tests.conftest import ImageServer

NODE = "node-under-test"
IMAGE = artifact_pb2.ARTIFACT_TYPE_IMAGE
A = artifact_pb2


async def no_endpoints() -> tuple[Endpoint, ...]:
    return ()


class Harness:
    """DiskImages of node NODE over a real etcd, its blobs under a tmp folder."""

    def __init__(self, store: Store, root: Path) -> None:
        self.store = store
        self.records = BlobRecords(store)
        self.blobs = LocalBlobStore(root / "blobs")
        images = ImageCache(
            root / "images",
            {},
            blobs=self.blobs,
            endpoints=no_endpoints,
            allowed=parse_networks("127.0.0.0/8"),
        )
        self.disks = DiskImages(node=NODE, images=images, blobs=self.blobs, records=self.records)

    async def artifact(self, source_url: str, **fields: object) -> str:
        """A new image artifact (state initial) of `source_url`; its uuid."""
        name = str(uuid.uuid4())
        record = records_pb2.ArtifactRecord(
            artifact=A.Artifact(
                uuid=name,
                state=A.ARTIFACT_STATE_INITIAL,
                artifact_type=IMAGE,
                source_url=source_url,
                namespace="system",
                max_versions=3,
            ),
            created_at=1.0,
        )
        for field, value in fields.items():
            setattr(record, field, value)
        assert await self.store.commit([Put(key("artifact", name), record.SerializeToString(), 0)])
        return name

    async def read(self, name: str) -> records_pb2.ArtifactRecord:
        stored = await self.records.artifact(name)
        assert stored is not None
        return stored.record

    async def blob(self, name: str) -> records_pb2.BlobRecord:
        stored = await self.records.blob(name)
        assert stored is not None
        return stored.record

    async def set_artifact(self, name: str, **view: object) -> None:
        stored = await self.records.artifact(name)
        assert stored is not None
        for field, value in view.items():
            setattr(stored.record.artifact, field, value)
        assert await self.store.commit(
            [Put(key("artifact", name), stored.record.SerializeToString(), stored.mod_revision)]
        )


@pytest.fixture
async def harness(etcd: str, tmp_path: Path) -> AsyncIterator[Harness]:
    store = Store(etcd)
    yield Harness(store, tmp_path)
    await store.close()


def versions(record: records_pb2.ArtifactRecord) -> list[tuple[int, str]]:
    return [(version.index, version.blob_uuid) for version in record.versions]


async def test_a_fetch_makes_one_blob_and_one_version(
    harness: Harness, image_server: ImageServer
) -> None:
    data = b"first image" * 50
    url = image_server.publish(f"artifact-{uuid.uuid4().hex}.raw", data)
    name = await harness.artifact(url)
    image = await harness.disks.from_artifact(name)
    assert image.blob_uuid is not None
    assert (image.path, image.fmt) == (harness.blobs.path(image.blob_uuid), "raw")
    assert image.path.read_bytes() == data

    artifact = await harness.read(name)
    assert artifact.artifact.state == A.ARTIFACT_STATE_CREATED
    assert not artifact.artifact.HasField("error_message")
    assert versions(artifact) == [(1, image.blob_uuid)]
    assert artifact.last_index == 1
    blob = (await harness.blob(image.blob_uuid)).blob
    assert blob.state == A.BLOB_STATE_CREATED
    assert (blob.size, blob.sha512, blob.format) == (
        len(data),
        hashlib.sha512(data).hexdigest(),
        "raw",
    )
    assert list(blob.locations) == [NODE]
    assert blob.reference_count == 1  # the version's
    assert blob.modified > 0 and blob.fetched_at >= blob.modified

    # Here already: a second instance uses it, nothing is fetched.
    hits = image_server.hits(url.rpartition("/")[2])
    assert await harness.disks.from_artifact(name) == image
    assert image_server.hits(url.rpartition("/")[2]) == hits


async def test_same_content_adopts_changed_content_adds_and_old_versions_are_pruned(
    harness: Harness, image_server: ImageServer
) -> None:
    file = f"versions-{uuid.uuid4().hex}.raw"
    url = image_server.publish(file, b"version one")
    name = await harness.artifact(url)
    await harness.set_artifact(name, max_versions=2)
    first = await harness.disks.from_artifact(name)
    assert first.blob_uuid is not None

    # The copy here is lost; the same content fetched again adopts the blob.
    harness.blobs.remove(first.blob_uuid)
    again = await harness.disks.from_artifact(name)
    assert again == first
    assert again.path.read_bytes() == b"version one"
    assert image_server.hits(file) == 2
    artifact = await harness.read(name)
    assert versions(artifact) == [(1, first.blob_uuid)]
    assert (await harness.blob(first.blob_uuid)).blob.reference_count == 1
    assert len([p for p in harness.blobs.root.rglob("*") if p.is_file()]) == 1  # one copy

    made = [first.blob_uuid]
    for content in (b"version two", b"version three"):
        image_server.publish(file, content)
        harness.blobs.remove(made[-1])
        image = await harness.disks.from_artifact(name)
        assert image.blob_uuid not in made
        assert image.path.read_bytes() == content
        assert image.blob_uuid is not None
        made.append(image.blob_uuid)
    artifact = await harness.read(name)
    assert versions(artifact) == [(2, made[1]), (3, made[2])]  # index 1 pruned
    assert artifact.last_index == 3
    pruned = await harness.blob(made[0])
    assert (pruned.blob.reference_count, pruned.blob.state) == (0, A.BLOB_STATE_DELETED)
    assert pruned.deleted_at > 0
    assert [(await harness.blob(b)).blob.reference_count for b in made[1:]] == [1, 1]


async def test_a_failed_fetch_marks_the_artifact_error_until_one_succeeds(
    harness: Harness, image_server: ImageServer
) -> None:
    file = f"late-{uuid.uuid4().hex}.raw"
    url = image_server.url(file)
    name = await harness.artifact(url)
    with pytest.raises(ImageError) as raised:
        await harness.disks.from_artifact(name)
    assert str(raised.value) == f"fetching {url}: HTTP 404 Not Found"
    artifact = await harness.read(name)
    assert artifact.artifact.state == A.ARTIFACT_STATE_ERROR
    assert artifact.artifact.error_message == f"fetching {url}: HTTP 404 Not Found"
    assert not artifact.versions

    image_server.publish(file, b"there now")
    image = await harness.disks.from_artifact(name)
    artifact = await harness.read(name)
    assert artifact.artifact.state == A.ARTIFACT_STATE_CREATED
    assert not artifact.artifact.HasField("error_message")
    assert versions(artifact) == [(1, image.blob_uuid)]


async def test_a_failed_refetch_keeps_a_created_artifact(
    harness: Harness, image_server: ImageServer
) -> None:
    file = f"gone-later-{uuid.uuid4().hex}.raw"
    name = await harness.artifact(image_server.publish(file, b"was here"))
    image = await harness.disks.from_artifact(name)
    assert image.blob_uuid is not None
    harness.blobs.remove(image.blob_uuid)
    await harness.set_artifact(name, source_url=image_server.url(f"never-{file}"))
    with pytest.raises(ImageError, match="404"):
        await harness.disks.from_artifact(name)
    artifact = await harness.read(name)
    assert artifact.artifact.state == A.ARTIFACT_STATE_CREATED
    assert versions(artifact) == [(1, image.blob_uuid)]


async def test_a_deleted_artifact_still_serves_an_instance_without_a_version(
    harness: Harness, image_server: ImageServer
) -> None:
    url = image_server.publish(f"deleted-{uuid.uuid4().hex}.raw", b"deleted artifact")
    name = await harness.artifact(url)
    await harness.set_artifact(name, state=A.ARTIFACT_STATE_DELETED)
    image = await harness.disks.from_artifact(name)
    assert image.blob_uuid is not None
    artifact = await harness.read(name)
    assert (artifact.artifact.state, versions(artifact)) == (A.ARTIFACT_STATE_DELETED, [])
    blob = (await harness.blob(image.blob_uuid)).blob
    assert (blob.state, blob.reference_count) == (A.BLOB_STATE_CREATED, 0)


async def test_concurrent_instances_of_one_artifact_share_one_fetch(
    harness: Harness, image_server: ImageServer
) -> None:
    file = f"shared-{uuid.uuid4().hex}.raw"
    name = await harness.artifact(image_server.publish(file, b"shared" * 1000))
    images = await asyncio.gather(*(harness.disks.from_artifact(name) for _ in range(5)))
    assert len(set(images)) == 1
    assert image_server.hits(file) == 1
    assert len((await harness.read(name)).versions) == 1


async def test_a_blob_source_is_used_only_when_here(
    harness: Harness, image_server: ImageServer
) -> None:
    name = await harness.artifact(image_server.publish(f"b-{uuid.uuid4().hex}.raw", b"blob"))
    blob_uuid = (await harness.disks.from_artifact(name)).blob_uuid
    assert blob_uuid is not None
    image = await harness.disks.from_blob(blob_uuid)
    assert (image.path, image.fmt, image.blob_uuid) == (
        harness.blobs.path(blob_uuid),
        "raw",
        blob_uuid,
    )
    harness.blobs.remove(blob_uuid)
    with pytest.raises(ImageError) as raised:
        await harness.disks.from_blob(blob_uuid)
    assert str(raised.value) == f"blob {blob_uuid} is not on node {NODE}"
    missing = str(uuid.uuid4())
    with pytest.raises(ImageError, match=f"blob {missing} not found"):
        await harness.disks.from_blob(missing)


async def test_a_cache_request_is_fetched_and_answered(
    harness: Harness, image_server: ImageServer
) -> None:
    file = f"cache-{uuid.uuid4().hex}.raw"
    url = image_server.publish(file, b"cached by request")
    name = await harness.artifact(url, fetch_node=NODE, fetch_requested_at=5.0)
    other = await harness.artifact(url, fetch_node="another-node", fetch_requested_at=5.0)
    await harness.disks.answer_cache_request(name)
    await harness.disks.answer_cache_request(other)  # not this node's: untouched
    artifact = await harness.read(name)
    assert (artifact.fetch_node, artifact.fetch_requested_at) == ("", 0)
    assert artifact.artifact.state == A.ARTIFACT_STATE_CREATED
    assert len(artifact.versions) == 1
    assert (await harness.read(other)).fetch_node == "another-node"

    # Asked again (or seen again after a restart): the source is checked,
    # found unchanged, and nothing is fetched.
    await harness.set_artifact(name)
    stored = await harness.records.artifact(name)
    assert stored is not None
    stored.record.fetch_node = NODE
    assert await harness.store.commit(
        [Put(key("artifact", name), stored.record.SerializeToString(), stored.mod_revision)]
    )
    await harness.disks.answer_cache_request(name)
    assert (await harness.read(name)).fetch_node == ""
    assert image_server.hits(file) == 2  # the check's GET, closed after its headers
    assert len((await harness.read(name)).versions) == 1
    assert len([p for p in harness.blobs.root.rglob("*") if p.is_file()]) == 1

    failing = await harness.artifact(image_server.url(f"no-{file}"), fetch_node=NODE)
    with pytest.raises(ImageError, match="404"):
        await harness.disks.answer_cache_request(failing)
    artifact = await harness.read(failing)
    assert (artifact.artifact.state, artifact.fetch_node) == (A.ARTIFACT_STATE_ERROR, "")
    assert "HTTP 404" in artifact.artifact.error_message


async def instance_record(store: Store, state: int) -> str:
    name = str(uuid.uuid4())
    record = records_pb2.InstanceRecord(
        instance=instance_pb2.Instance(uuid=name, state=state, node=NODE)  # type: ignore[arg-type]
    )
    assert await InstanceStore(store).create(record)
    return name


async def test_the_created_write_adds_one_reference_per_disk(
    harness: Harness, image_server: ImageServer
) -> None:
    name = await harness.artifact(image_server.publish(f"r-{uuid.uuid4().hex}.raw", b"refs"))
    blob_uuid = (await harness.disks.from_artifact(name)).blob_uuid
    assert blob_uuid is not None
    instance = await instance_record(harness.store, states.CREATING)
    disks = [
        instance_pb2.Disk(device="vda", blob_uuid=blob_uuid),
        instance_pb2.Disk(device="vdb"),  # the config drive: no blob
        instance_pb2.Disk(device="vdc", blob_uuid=blob_uuid),
    ]
    record = await write_created(InstanceStore(harness.store), harness.records, instance, disks)
    assert record.instance.state == states.CREATED
    assert [disk.blob_uuid for disk in record.instance.disks] == [blob_uuid, "", blob_uuid]
    assert (await harness.blob(blob_uuid)).blob.reference_count == 3  # version + 2 disks


async def test_the_created_write_refuses_a_deleted_blob(
    harness: Harness, image_server: ImageServer
) -> None:
    name = await harness.artifact(image_server.publish(f"d-{uuid.uuid4().hex}.raw", b"gone"))
    blob_uuid = (await harness.disks.from_artifact(name)).blob_uuid
    assert blob_uuid is not None
    stored = await harness.records.blob(blob_uuid)
    assert stored is not None
    stored.record.blob.state = A.BLOB_STATE_DELETED
    assert await harness.store.commit(
        [Put(key("blob", blob_uuid), stored.record.SerializeToString(), stored.mod_revision)]
    )
    instance = await instance_record(harness.store, states.CREATING)
    instances = InstanceStore(harness.store)
    disks = [instance_pb2.Disk(device="vda", blob_uuid=blob_uuid)]
    with pytest.raises(BlobUnusable, match=f"blob {blob_uuid} is deleted"):
        await write_created(instances, harness.records, instance, disks)
    fresh = await instances.get(instance)
    assert fresh is not None and fresh.record.instance.state == states.CREATING


async def wait_answered(harness: Harness, name: str) -> records_pb2.ArtifactRecord:
    for _ in range(200):
        record = await harness.read(name)
        if not record.fetch_node:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"artifact {name}'s cache request was never answered")


async def test_cache_requests_are_followed_from_a_snapshot_then_a_watch(
    harness: Harness, image_server: ImageServer
) -> None:
    url = image_server.publish(f"follow-{uuid.uuid4().hex}.raw", b"followed")
    before = await harness.artifact(url, fetch_node=NODE, fetch_requested_at=1.0)
    follower = CacheRequests(harness.records, NODE, harness.disks.answer_cache_request)
    task = asyncio.create_task(follower.run())
    try:
        first = await wait_answered(harness, before)
        after = await harness.artifact(url, fetch_node=NODE, fetch_requested_at=2.0)
        second = await wait_answered(harness, after)
        failing = await harness.artifact(image_server.url("follow-missing.raw"), fetch_node=NODE)
        third = await wait_answered(harness, failing)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [len(record.versions) for record in (first, second)] == [1, 1]
    assert first.artifact.state == second.artifact.state == A.ARTIFACT_STATE_CREATED
    assert third.artifact.state == A.ARTIFACT_STATE_ERROR
    assert "HTTP 404" in third.artifact.error_message
