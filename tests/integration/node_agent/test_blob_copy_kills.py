"""Peer copies whose sending node agent is killed outright (SIGKILL) part way
(issue 13: a killed sender leaves no blob that passes for whole, and the
copy completes from elsewhere).

Each holder is a process of its own serving the node agent's real ReadBlob
(``blob_holder.py``), found through its node record in an etcd of this
module's own; the copier is ``peer_copy.PeerCopier`` as preflight builds it
(default policy). A blob of `SIZE` bytes is copied, and once `LANDED` bytes
are in the copier's partial file the holder it reads from is killed:

- with a second holder, the copy resumes there at the bytes already
  written and lands whole: the right sha512, the copier listed once, no
  partial file;
- with no other holder, the copy fails with CopyFailed, leaving no file
  under the blob's name, no partial file and no listing; once a holder
  serves again, a new copy succeeds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sfmesh.v1 import artifact_pb2, node_service_pb2, records_pb2

from devmesh.mesh import Ports
from services.common.store import Put, Store, key
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport
from services.node_agent.blob_locations import BlobLocations
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.file_digests import file_digest
from services.node_agent.peer_agents import PeerAgents
from services.node_agent.peer_copy import CopyFailed, PeerCopier
from tests.meshes import started_etcd

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
SECRET = "a-service-key-the-killed-holders-share-0123456789abcdef"
SIZE = 192 * 2**20
"""Bytes of the blob copied: several hundred ms of copying on loopback."""
LANDED = 8 * 2**20
"""Bytes in the copier's partial file when the holder is killed."""
STARTUP = 20.0
"""Seconds a holder process may take to serve."""


@dataclass
class Holder:
    """A node whose agent serves ReadBlob from a process of its own."""

    name: str
    state: Path
    address: str
    reads: list[tuple[str, int]] = field(default_factory=list)
    """(blob uuid, offset) of every ReadBlob call, in order."""
    process: asyncio.subprocess.Process | None = None
    _reporting: asyncio.Task[None] | None = None

    @property
    def blobs(self) -> LocalBlobStore:
        return LocalBlobStore(self.state / "blobs")

    async def start(self) -> None:
        """Start serving at `address` and wait until it answers."""
        env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'gen'}"}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.node_agent.blob_holder",
            str(self.state),
            self.address,
            SECRET,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        self._reporting = asyncio.create_task(self._report(self.process))
        await self._serving()

    async def kill(self) -> None:
        """SIGKILL: no handler runs, no stream is ended cleanly."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert await self.process.wait() == -signal.SIGKILL
        if self._reporting is not None:
            await self._reporting

    async def _report(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            verb, blob, offset = line.decode().split()
            assert verb == "read"
            self.reads.append((blob, int(offset)))

    async def _serving(self) -> None:
        deadline = time.monotonic() + STARTUP
        async with grpc.aio.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.process is not None and self.process.returncode is None
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                assert time.monotonic() < deadline, f"holder {self.name} never served"
                await asyncio.sleep(0.05)


@dataclass
class Mesh:
    """Holders and a copier around one etcd."""

    store: Store
    tmp: Path
    copier_name: str = field(default_factory=lambda: f"copier-{uuid.uuid4().hex[:8]}")
    holders: list[Holder] = field(default_factory=list)
    peers: PeerAgents | None = None

    async def holder(self) -> Holder:
        name = f"holder-{uuid.uuid4().hex[:8]}"
        address = f"127.0.0.1:{Ports.free().node_agent}"
        holder = Holder(name, self.tmp / name, address)
        self.holders.append(holder)
        record = records_pb2.NodeRecord(name=name, state=node_service_pb2.NODE_STATE_CREATED)
        record.facts.address = address
        await self.store.commit([Put(key("node", name), record.SerializeToString())])
        await holder.start()
        return holder

    def copier(self) -> tuple[PeerCopier, LocalBlobStore]:
        """The copying node's PeerCopier, built as the node agent builds it."""
        authority = TokenAuthority(internal_secret=SECRET)
        self.peers = PeerAgents(
            self.store,
            InternalCredentials(authority, "node_agent").metadata,
            transport=Transport(),
        )
        blobs = LocalBlobStore(self.tmp / self.copier_name / "blobs")
        copier = PeerCopier(
            node=self.copier_name,
            blobs=blobs,
            records=BlobRecords(self.store),
            locations=BlobLocations(self.store, self.copier_name),
            peers=self.peers,
        )
        return copier, blobs

    async def blob(self, on: list[Holder]) -> tuple[str, str]:
        """A `created` blob of SIZE bytes held by `on` (one file, hard-linked);
        its uuid and sha512."""
        name = str(uuid.uuid4())
        sha512 = await asyncio.to_thread(write_blob, on[0].blobs, name)
        for other in on[1:]:
            target = other.blobs.path(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(on[0].blobs.path(name), target)
        blob = artifact_pb2.Blob(
            uuid=name,
            state=artifact_pb2.BLOB_STATE_CREATED,
            version=6,
            size=SIZE,
            locations=[holder.name for holder in on],
            sha512=sha512,
            format="raw",
        )
        record = records_pb2.BlobRecord(blob=blob, created_at=time.time())
        assert await self.store.commit([Put(key("blob", name), record.SerializeToString(), 0)])
        return name, sha512

    async def locations(self, name: str) -> list[str]:
        item = await self.store.get(key("blob", name))
        assert item is not None
        return list(records_pb2.BlobRecord.FromString(item.value).blob.locations)


def write_blob(blobs: LocalBlobStore, name: str) -> str:
    """SIZE bytes, no two MiB alike, as blob `name`; their sha512 (blocking)."""
    block = os.urandom(2**20)
    with blobs.writer(name) as writer:
        for index in range(SIZE // 2**20):
            writer.write(block[index:] + block[:index])
        writer.commit()
        return writer.sha512()


@pytest.fixture(scope="module")
def own_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with started_etcd(tmp_path_factory.mktemp("kill-etcd")) as address:
        yield address


@pytest.fixture
async def mesh(own_etcd: str, tmp_path: Path) -> AsyncIterator[Mesh]:
    store = Store(own_etcd)
    built = Mesh(store, tmp_path)
    yield built
    if built.peers is not None:
        await built.peers.close()
    for holder in built.holders:
        if holder.process is not None and holder.process.returncode is None:
            await holder.kill()
    await store.close()


async def landed(partial: Path, copy: asyncio.Task[Path]) -> int:
    """Wait until LANDED bytes are in `partial`; how many there are."""
    while True:
        assert not copy.done(), "the copy ended before it could be interrupted"
        size = await asyncio.to_thread(size_of, partial)
        if size >= LANDED:
            return size
        await asyncio.sleep(0.001)


def size_of(path: Path) -> int:
    """Bytes in `path`; 0 when it is not there (blocking)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def reading(holders: list[Holder], name: str) -> Holder:
    """The one holder a copy of blob `name` has read from so far."""
    (source,) = [holder for holder in holders if any(blob == name for blob, _ in holder.reads)]
    return source


def partials(blobs: LocalBlobStore) -> list[Path]:
    return list(blobs.root.glob("*/*.partial"))


async def test_a_holder_killed_mid_copy_is_replaced_by_the_other(mesh: Mesh) -> None:
    first, second = await asyncio.gather(mesh.holder(), mesh.holder())
    name, sha512 = await mesh.blob([first, second])
    copier, blobs = mesh.copier()
    copy = asyncio.create_task(copier.ensure(name))
    at_kill = await landed(blobs.path(name).with_name(f"{name}.partial"), copy)
    source = reading([first, second], name)
    survivor = second if source is first else first
    await source.kill()

    path = await copy
    assert path == blobs.path(name)
    assert (await asyncio.to_thread(file_digest, path)).sha512 == sha512
    assert path.stat().st_size == SIZE
    assert partials(blobs) == []
    listed = await mesh.locations(name)
    assert listed.count(mesh.copier_name) == 1
    assert sorted(listed) == sorted([first.name, second.name, mesh.copier_name])
    assert source.reads == [(name, 0)]
    (resumed,) = survivor.reads  # once, from where the killed stream left off
    assert resumed[0] == name and at_kill <= resumed[1] < SIZE


async def test_the_only_holder_killed_mid_copy_fails_it_cleanly(mesh: Mesh) -> None:
    holder = await mesh.holder()
    name, sha512 = await mesh.blob([holder])
    copier, blobs = mesh.copier()
    copy = asyncio.create_task(copier.ensure(name))
    await landed(blobs.path(name).with_name(f"{name}.partial"), copy)
    assert reading([holder], name) is holder
    await holder.kill()

    with pytest.raises(CopyFailed, match=rf"copying blob {name} failed after 6 attempts"):
        await copy
    assert not blobs.path(name).exists()
    assert partials(blobs) == []
    assert await mesh.locations(name) == [holder.name]

    await holder.start()  # the same node serves again, at the same address
    path = await copier.ensure(name)
    assert (await asyncio.to_thread(file_digest, path)).sha512 == sha512
    assert partials(blobs) == []
    assert await mesh.locations(name) == [holder.name, mesh.copier_name]
    assert holder.reads[0] == (name, 0) and holder.reads[-1] == (name, 0)
