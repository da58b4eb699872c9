"""Blobs across nodes (peer_copy.py, peer_agents.py, blob_care.py,
blob_locations.py, and disk_images.py's use of them) with a real etcd and
several node agents' ReadBlob servers on loopback, each with its own state
folder, name and port, found through node records in etcd: a copy lands
whole and checked, resumes from its offset after a broken stream, moves on
from a peer that keeps failing and leaves nothing that looks whole when all
fail or the disk fills up; a corrupted replica is refused by the copier and, found by the
verification, replaced; replication brings a blob to the factor with one
puller; a missing file drops the location until replication restores it; a
deleted blob's file goes after the grace; an instance's blob base is copied
in preflight, and an artifact's newest blob is copied rather than fetched."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from sfmesh.v1 import (
    artifact_pb2,
    node_agent_service_pb2,
    node_agent_service_pb2_grpc,
    node_service_pb2,
    records_pb2,
)

from services.common.interceptors import AuthInterceptor, RequestInterceptor
from services.common.store import Delete, Put, Store, key
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport
from services.node_agent.blob_care import BlobCare, CareSettings
from services.node_agent.blob_locations import BlobLocations
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_rules import rank
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.disk_images import DiskImages
from services.node_agent.fetch_policy import Endpoint, parse_networks
from services.node_agent.images import ImageCache, ImageError
from services.node_agent.peer_agents import PeerAgents
from services.node_agent.peer_copy import CopyFailed, CopyPolicy, PeerCopier
from services.node_agent.transfers import TransferServicer
from services.node_agent.uploads import UploadFiles
from tests.event_sinks import RecordedEvents
from tests.meshes import started_etcd
from tests.metric_samples import sample

if TYPE_CHECKING:
    from tests.conftest import ImageServer

SECRET = "a-service-key-shared-by-the-nodes-of-this-test-0123456789"


class ServedBlobs(TransferServicer):
    """ReadBlob as a node agent serves it, recording each request's offset;
    while `breaks` > 0 a stream ends with UNAVAILABLE after `break_after`
    bytes (a peer dying mid-copy), counting `breaks` down."""

    def __init__(self, root: Path, blobs: LocalBlobStore) -> None:
        super().__init__(uploads=UploadFiles(root / "uploads", blobs), blobs=blobs)
        self.offsets: list[int] = []
        self.breaks = 0
        self.break_after = 0

    async def ReadBlob(
        self,
        request: node_agent_service_pb2.ReadBlobRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[node_agent_service_pb2.ReadBlobResponse]:
        self.offsets.append(request.offset)
        sent = 0
        async for reply in super().ReadBlob(request, context):
            if self.breaks and sent >= self.break_after:
                self.breaks -= 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the peer went away")
            sent += len(reply.data)
            yield reply


@dataclass
class Node:
    name: str
    root: Path
    blobs: LocalBlobStore
    served: ServedBlobs
    copier: PeerCopier
    locations: BlobLocations
    peers: PeerAgents
    events: RecordedEvents
    server: grpc.aio.Server


@dataclass
class Mesh:
    store: Store
    tmp: Path
    authority: TokenAuthority
    nodes: list[Node] = field(default_factory=list)

    async def node(self) -> Node:
        name = f"node-{uuid.uuid4().hex[:8]}"
        root = self.tmp / name
        blobs = LocalBlobStore(root / "blobs")
        served = ServedBlobs(root, blobs)
        server = grpc.aio.server(
            interceptors=[RequestInterceptor(), AuthInterceptor(self.authority)]
        )
        node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server(served, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        record = records_pb2.NodeRecord(name=name, state=node_service_pb2.NODE_STATE_CREATED)
        record.facts.address = f"127.0.0.1:{port}"
        await self.store.commit([Put(key("node", name), record.SerializeToString())])
        peers = PeerAgents(
            self.store,
            InternalCredentials(self.authority, "node_agent").metadata,
            transport=Transport(),
        )
        locations = BlobLocations(self.store, name)
        events = RecordedEvents()
        copier = PeerCopier(
            node=name,
            blobs=blobs,
            records=BlobRecords(self.store),
            locations=locations,
            peers=peers,
            events=events,
            policy=CopyPolicy(attempts=4, backoff=0.01),
        )
        node = Node(name, root, blobs, served, copier, locations, peers, events, server)
        self.nodes.append(node)
        return node

    async def blob(self, data: bytes, on: list[Node], **fields: Any) -> str:
        """A `created` blob of `data`, its file on each of `on`."""
        name = str(uuid.uuid4())
        for node in on:
            with node.blobs.writer(name) as writer:
                writer.write(data)
                writer.commit()
        blob = artifact_pb2.Blob(
            uuid=name,
            state=artifact_pb2.BLOB_STATE_CREATED,
            version=6,
            size=len(data),
            locations=[node.name for node in on],
            sha512=hashlib.sha512(data).hexdigest(),
            **{"format": "raw", **fields},
        )
        record = records_pb2.BlobRecord(blob=blob, created_at=time.time())
        assert await self.store.commit([Put(key("blob", name), record.SerializeToString(), 0)])
        return name

    async def record(self, name: str) -> records_pb2.BlobRecord:
        item = await self.store.get(key("blob", name))
        assert item is not None
        return records_pb2.BlobRecord.FromString(item.value)

    async def change(self, name: str, **fields: Any) -> None:
        item = await self.store.get(key("blob", name))
        assert item is not None
        record = records_pb2.BlobRecord.FromString(item.value)
        for field_name, value in fields.items():
            if field_name == "deleted_at":
                record.deleted_at = value
            elif field_name == "locations":
                del record.blob.locations[:]
                record.blob.locations.extend(value)
            else:
                setattr(record.blob, field_name, value)
        assert await self.store.commit(
            [Put(key("blob", name), record.SerializeToString(), item.mod_revision)]
        )

    async def locations(self, name: str) -> list[str]:
        return list((await self.record(name)).blob.locations)

    def care(
        self,
        node: Node,
        *,
        clock: Callable[[], float] = time.time,
        kept: Callable[[], frozenset[str]] = frozenset,
        **settings: Any,
    ) -> BlobCare:
        return BlobCare(
            node=node.name,
            store=self.store,
            blobs=node.blobs,
            copier=node.copier,
            locations=node.locations,
            peers=node.peers,
            events=node.events,
            settings=CareSettings(reserve=0, **settings),
            clock=clock,
            kept=kept,
        )


@pytest.fixture(scope="module")
def own_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An etcd of this module's own: replication ranks every live node
    record, so node records other tests leave in a shared etcd would take
    turns that no node here pulls."""
    with started_etcd(tmp_path_factory.mktemp("blob-etcd")) as address:
        yield address


@pytest.fixture
async def mesh(own_etcd: str, tmp_path: Path) -> AsyncIterator[Mesh]:
    store = Store(own_etcd)
    built = Mesh(store, tmp_path, TokenAuthority(internal_secret=SECRET))
    yield built
    for node in built.nodes:
        await node.peers.close()
        await node.server.stop(0)
        await store.commit([Delete(key("node", node.name))])
    await store.close()


def partials(node: Node) -> list[Path]:
    return list(node.blobs.root.glob("*/*.partial"))


async def test_a_copy_lands_whole_checked_and_listed(mesh: Mesh) -> None:
    a, b = await mesh.node(), await mesh.node()
    data = os.urandom(5 * 2**20 + 123)
    name = await mesh.blob(data, [a])
    path = await b.copier.ensure(name)
    assert path == b.blobs.path(name)
    assert hashlib.sha512(path.read_bytes()).digest() == hashlib.sha512(data).digest()
    assert await mesh.locations(name) == [a.name, b.name]
    assert partials(b) == []
    assert a.served.offsets == [0]
    assert await b.copier.ensure(name) == path  # already here: nothing read
    assert a.served.offsets == [0]


async def test_a_broken_stream_resumes_from_its_offset(mesh: Mesh) -> None:
    a, b = await mesh.node(), await mesh.node()
    data = os.urandom(4 * 2**20)
    name = await mesh.blob(data, [a])
    a.served.breaks, a.served.break_after = 1, 2 * 2**20
    fetched = sample("sfmesh_node_fetched_bytes_total", kind="blob")
    await b.copier.ensure(name)
    assert b.blobs.path(name).read_bytes() == data
    assert a.served.offsets == [0, 2 * 2**20]  # the second stream carried on
    assert sample("sfmesh_node_fetched_bytes_total", kind="blob") == fetched + len(data)


async def test_a_peer_that_keeps_failing_is_left_for_another(mesh: Mesh) -> None:
    a, b, c = await mesh.node(), await mesh.node(), await mesh.node()
    data = os.urandom(3 * 2**20)
    name = await mesh.blob(data, [a, c])
    a.served.breaks, a.served.break_after = 100, 2**20
    await b.copier.ensure(name)
    assert b.blobs.path(name).read_bytes() == data
    assert c.served.offsets and all(offset in (0, 2**20) for offset in c.served.offsets)
    assert sorted(await mesh.locations(name)) == sorted([a.name, b.name, c.name])


async def test_when_every_peer_fails_nothing_looks_whole(mesh: Mesh) -> None:
    a, b = await mesh.node(), await mesh.node()
    data = os.urandom(8 * 2**20)
    name = await mesh.blob(data, [a])
    a.served.breaks, a.served.break_after = 100, 2**20  # a chunk a stream, then it breaks
    with pytest.raises(CopyFailed, match="after 4 attempts"):
        await b.copier.ensure(name)
    assert a.served.offsets == [0, 2**20, 2 * 2**20, 3 * 2**20]
    assert not b.blobs.path(name).exists() and partials(b) == []
    assert await mesh.locations(name) == [a.name]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a filesystem of 3.25 MiB of its own (a tmpfs; root only)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3328k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=True)


async def test_a_disk_filling_up_fails_the_copy_leaving_nothing(
    mesh: Mesh, small_disk: Path
) -> None:
    a = await mesh.node()
    data = os.urandom(3 * 2**20 + 2**19)  # its last chunk fits only in part
    name = await mesh.blob(data, [a])
    blobs = LocalBlobStore(small_disk / "blobs")
    copier = PeerCopier(
        node="small",
        blobs=blobs,
        records=BlobRecords(mesh.store),
        locations=BlobLocations(mesh.store, "small"),
        peers=a.peers,
        free=lambda: 2**40,  # the disk fills after the check (another writer)
    )
    with pytest.raises(CopyFailed, match="No space left on device"):
        await copier.ensure(name)
    assert not blobs.path(name).exists() and list(blobs.root.glob("*/*.partial")) == []
    assert await mesh.locations(name) == [a.name]


async def test_a_dead_peer_is_passed_over(mesh: Mesh) -> None:
    a, b, c = await mesh.node(), await mesh.node(), await mesh.node()
    data = os.urandom(2**20)
    name = await mesh.blob(data, [a, c])
    await a.server.stop(0)  # its record still says created
    await b.copier.ensure(name)
    assert b.blobs.path(name).read_bytes() == data


async def test_a_corrupted_replica_is_refused_by_its_checksum(mesh: Mesh) -> None:
    a, b, c = await mesh.node(), await mesh.node(), await mesh.node()
    data = os.urandom(2 * 2**20)
    name = await mesh.blob(data, [a])
    with a.blobs.path(name).open("r+b") as corrupt:
        corrupt.seek(2**20)
        corrupt.write(b"\xff" * 16)
    with pytest.raises(CopyFailed, match="sha512"):
        await b.copier.ensure(name)
    assert not b.blobs.path(name).exists() and partials(b) == []
    assert b.events.messages(name) == ["blob failed checksum validation"]
    assert await mesh.locations(name) == [a.name]

    # another good holder: the copy comes from it
    c_path = c.blobs.path(name)
    c_path.parent.mkdir(parents=True, exist_ok=True)
    c_path.write_bytes(data)
    await mesh.change(name, locations=[a.name, c.name])
    await b.copier.ensure(name)
    assert b.blobs.path(name).read_bytes() == data


async def test_verification_finds_a_corrupted_replica_and_replication_replaces_it(
    mesh: Mesh,
) -> None:
    a, b = await mesh.node(), await mesh.node()
    data = os.urandom(2**20)
    name = await mesh.blob(data, [a, b])
    with b.blobs.path(name).open("r+b") as corrupt:
        corrupt.write(b"\x00" * 8 if data[:8] != b"\x00" * 8 else b"\x01" * 8)
    care = mesh.care(b, interval=0.05)
    checked = set()
    while await care.verify_one():  # every local blob is due: never checked here
        checked.add(name)
    assert name in checked
    assert b.events.messages(name) == ["blob failed checksum validation"]
    assert await mesh.locations(name) == [a.name]
    assert not b.blobs.path(name).exists()
    await care.tick()
    await care.pulls_done()
    assert b.blobs.path(name).read_bytes() == data
    assert await mesh.locations(name) == [a.name, b.name]


async def test_replication_brings_a_blob_to_the_factor_with_one_puller(mesh: Mesh) -> None:
    a, b, c = await mesh.node(), await mesh.node(), await mesh.node()
    data = os.urandom(2**20)
    name = await mesh.blob(data, [a])
    cares = [mesh.care(node, factor=2) for node in (a, b, c)]
    for care in cares:
        await care.tick()
    for care in cares:
        await care.pulls_done()
    found = await mesh.locations(name)
    assert len(found) == 2 and found[0] == a.name
    for care in cares:  # at the factor: nobody pulls any more
        await care.tick()
        await care.pulls_done()
    assert await mesh.locations(name) == found
    holder = next(node for node in (b, c) if node.name == found[1])
    assert holder.blobs.path(name).read_bytes() == data


async def test_a_stuck_ranking_widens_with_time(mesh: Mesh) -> None:
    a, b, c = await mesh.node(), await mesh.node(), await mesh.node()
    name = await mesh.blob(os.urandom(4096), [a])
    now = [1000.0]
    cares = {
        node.name: mesh.care(node, clock=lambda: now[0], factor=2, escalate=30.0) for node in (b, c)
    }
    _, second = rank(name, [b.name, c.name])
    await cares[second].tick()  # not its turn yet
    await cares[second].pulls_done()
    assert await mesh.locations(name) == [a.name]
    now[0] += 31.0  # the first never pulled
    await cares[second].tick()
    await cares[second].pulls_done()
    assert await mesh.locations(name) == [a.name, second]


async def test_a_missing_file_drops_the_location_until_replication_restores_it(
    mesh: Mesh,
) -> None:
    a, b = await mesh.node(), await mesh.node()
    data = os.urandom(2**20)
    name = await mesh.blob(data, [a, b])
    b.blobs.remove(name)
    care = mesh.care(b, factor=2)
    await care.tick()
    assert await mesh.locations(name) == [a.name]
    await care.tick()
    await care.pulls_done()
    assert await mesh.locations(name) == [a.name, b.name]
    assert b.blobs.path(name).read_bytes() == data


async def test_a_deleted_blob_is_not_replicated_and_its_file_goes_after_the_grace(
    mesh: Mesh,
) -> None:
    a, b = await mesh.node(), await mesh.node()
    name = await mesh.blob(os.urandom(4096), [a])
    await mesh.change(name, state=artifact_pb2.BLOB_STATE_DELETED, deleted_at=time.time())
    care_a, care_b = mesh.care(a, delete_grace=0.5), mesh.care(b, delete_grace=0.5)
    await care_b.tick()
    await care_b.pulls_done()
    assert not b.blobs.path(name).exists()
    await care_a.tick()
    assert a.blobs.path(name).exists()  # within the grace
    await asyncio.sleep(0.6)
    await care_a.tick()
    assert not a.blobs.path(name).exists()
    assert await mesh.locations(name) == []


async def no_endpoints() -> tuple[Endpoint, ...]:
    return ()


def disk_images(mesh: Mesh, node: Node) -> DiskImages:
    images = ImageCache(
        node.root / "images",
        {},
        blobs=node.blobs,
        endpoints=no_endpoints,
        allowed=parse_networks("127.0.0.0/8"),
    )
    return DiskImages(
        node=node.name,
        images=images,
        blobs=node.blobs,
        records=BlobRecords(mesh.store),
        copier=node.copier,
    )


async def test_preflight_copies_a_blob_base_from_a_peer(mesh: Mesh) -> None:
    a, b = await mesh.node(), await mesh.node()
    data = os.urandom(2**20)
    name = await mesh.blob(data, [a])
    image = await disk_images(mesh, b).from_blob(name)
    assert (image.path, image.fmt, image.blob_uuid) == (b.blobs.path(name), "raw", name)
    assert image.path.read_bytes() == data
    assert await mesh.locations(name) == [a.name, b.name]


def thin_layer(folder: Path, parent: str, *, backing: str = "") -> bytes:
    """A qcow2 layer holding 64 KiB of its own at 1 MiB, named over blob
    `parent` as a thin snapshot is (or over `backing`)."""
    path = folder / f"layer-{uuid.uuid4().hex}.qcow2"
    run = {"check": True, "capture_output": True, "timeout": 30}
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "4M"], **run)  # type: ignore[call-overload]
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", str(path)], **run)  # type: ignore[call-overload]
    named = backing or f"../{parent[:2]}/{parent}"
    rebase = ["qemu-img", "rebase", "-q", "-u", "-b", named, "-F", "raw", str(path)]
    subprocess.run(rebase, **run)  # type: ignore[call-overload]
    return path.read_bytes()


def flattened(path: Path, out: Path) -> bytes:
    """What a guest sees of the image at `path`, chain and all."""
    subprocess.run(
        ["qemu-img", "convert", "-O", "raw", str(path), str(out)],
        capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return out.read_bytes()


async def test_preflight_copies_a_thin_blob_s_chain_from_a_peer(mesh: Mesh) -> None:
    """Reference §9.6: the parents first; the layer then reads through them."""
    a, b = await mesh.node(), await mesh.node()
    base = os.urandom(4 * 2**20)
    parent = await mesh.blob(base, [a])
    child = await mesh.blob(thin_layer(mesh.tmp, parent), [a], depends_on=parent, format="qcow2")
    image = await disk_images(mesh, b).from_blob(child)
    assert (image.path, image.fmt, image.blob_uuid) == (b.blobs.path(child), "qcow2", child)
    assert b.blobs.path(parent).read_bytes() == base
    assert await mesh.locations(parent) == [a.name, b.name]
    assert await mesh.locations(child) == [a.name, b.name]
    seen = await asyncio.to_thread(flattened, image.path, mesh.tmp / "seen.raw")
    expected = bytearray(base)
    expected[2**20 : 2**20 + 2**16] = b"\x5a" * 2**16
    assert seen == bytes(expected)


async def test_a_thin_blob_naming_another_file_is_refused(mesh: Mesh) -> None:
    a = await mesh.node()
    parent = await mesh.blob(os.urandom(4 * 2**20), [a])
    for backing in ("/etc/hostname", f"../{parent[:2]}/{uuid.uuid4()}"):
        layer = thin_layer(mesh.tmp, parent, backing=backing)
        child = await mesh.blob(layer, [a], depends_on=parent, format="qcow2")
        with pytest.raises(ImageError, match="its backing file must be"):
            await disk_images(mesh, a).from_blob(child)
    plain = await mesh.blob(thin_layer(mesh.tmp, parent), [a], format="qcow2")  # no depends_on
    with pytest.raises(ImageError, match="refer to other files"):
        await disk_images(mesh, a).from_blob(plain)


async def test_an_artifact_fetched_on_one_node_is_copied_not_fetched_on_another(
    mesh: Mesh, image_server: ImageServer
) -> None:
    a, b = await mesh.node(), await mesh.node()
    file = f"mesh-once-{uuid.uuid4().hex}.raw"
    url = image_server.publish(file, os.urandom(2**20))
    artifact = str(uuid.uuid4())
    record = records_pb2.ArtifactRecord(
        artifact=artifact_pb2.Artifact(
            uuid=artifact,
            state=artifact_pb2.ARTIFACT_STATE_INITIAL,
            artifact_type=artifact_pb2.ARTIFACT_TYPE_IMAGE,
            source_url=url,
            namespace="system",
            max_versions=3,
        ),
        created_at=1.0,
    )
    assert await mesh.store.commit([Put(key("artifact", artifact), record.SerializeToString(), 0)])
    first = await disk_images(mesh, a).from_artifact(artifact)
    second = await disk_images(mesh, b).from_artifact(artifact)
    assert image_server.hits(file) == 1
    assert first.blob_uuid == second.blob_uuid and first.blob_uuid is not None
    assert second.path.read_bytes() == first.path.read_bytes()
    assert await mesh.locations(first.blob_uuid) == [a.name, b.name]


async def test_a_file_no_record_holds_goes_after_the_grace_unless_the_url_index_keeps_it(
    mesh: Mesh,
) -> None:
    a = await mesh.node()
    orphan, indexed = str(uuid.uuid4()), str(uuid.uuid4())
    for name in (orphan, indexed):
        with a.blobs.writer(name) as writer:
            writer.write(b"no record")
            writer.commit()
    care = mesh.care(a, delete_grace=0.3, kept=lambda: frozenset({indexed}))
    await care.tick()
    assert a.blobs.path(orphan).exists()
    await asyncio.sleep(0.4)
    await care.tick()
    assert not a.blobs.path(orphan).exists()
    assert a.blobs.path(indexed).exists()
