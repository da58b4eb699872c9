"""Blobs left `initial` by a maker that will never make them
(abandoned_blobs.py through blob_care.py's passes), with a real etcd of this
module's own (every node record counts) and a clock the tests move: a maker
whose agent restarted marks its stale reservations `error` and leaves the
ones it makes and the young ones; other nodes mark the reservations of a
maker gone for the grace (or never recorded) once, whoever gets there first,
and leave a live or briefly silent maker's alone; the file a maker adopted
just before dying goes after the delete grace."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sfmesh.v1 import artifact_pb2, node_service_pb2, records_pb2

from services.common.store import Put, Store, key
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport
from services.node_agent.abandoned_blobs import EVENT
from services.node_agent.blob_care import BlobCare, CareSettings
from services.node_agent.blob_locations import BlobLocations
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.peer_agents import PeerAgents
from services.node_agent.peer_copy import PeerCopier
from tests.event_sinks import RecordedEvents
from tests.meshes import started_etcd

GRACE = 300.0
DELETE_GRACE = 3600.0
INITIAL = artifact_pb2.BLOB_STATE_INITIAL
ERROR = artifact_pb2.BLOB_STATE_ERROR


@dataclass
class Node:
    name: str
    blobs: LocalBlobStore
    care: BlobCare
    peers: PeerAgents
    events: RecordedEvents
    making: set[str] = field(default_factory=set)


@dataclass
class Mesh:
    store: Store
    tmp: Path
    now: float = field(default_factory=time.time)
    nodes: list[Node] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def record_node(self, name: str, *, alive: bool = True, silent_for: float = 0.0) -> None:
        state = (
            node_service_pb2.NODE_STATE_CREATED if alive else node_service_pb2.NODE_STATE_MISSING
        )
        record = records_pb2.NodeRecord(name=name, state=state, lastseen=self.now - silent_for)
        await self.store.commit([Put(key("node", name), record.SerializeToString())])

    async def node(self) -> Node:
        """A live node agent's blob care (its node record says created)."""
        name = f"node-{uuid.uuid4().hex[:8]}"
        await self.record_node(name)
        blobs = LocalBlobStore(self.tmp / name / "blobs")
        authority = TokenAuthority(internal_secret="abandoned-blobs-test-key-0123456789abcdef")
        peers = PeerAgents(
            self.store,
            InternalCredentials(authority, "node_agent").metadata,
            transport=Transport(),
        )
        locations = BlobLocations(self.store, name)
        copier = PeerCopier(
            node=name,
            blobs=blobs,
            records=BlobRecords(self.store),
            locations=locations,
            peers=peers,
        )
        events = RecordedEvents()
        making: set[str] = set()
        care = BlobCare(
            node=name,
            store=self.store,
            blobs=blobs,
            copier=copier,
            locations=locations,
            peers=peers,
            events=events,
            settings=CareSettings(reserve=0, initial_grace=GRACE, delete_grace=DELETE_GRACE),
            clock=self.clock,
            making=lambda: frozenset(making),
        )
        node = Node(name, blobs, care, peers, events, making)
        self.nodes.append(node)
        return node

    async def reserved(self, maker: str, *, age: float, artifact: str = "") -> str:
        """A blob reserved `initial` for `maker` `age` seconds ago, as a
        snapshot request reserves it (a version of `artifact` to be)."""
        name = str(uuid.uuid4())
        blob = artifact_pb2.Blob(uuid=name, state=INITIAL, version=6)
        record = records_pb2.BlobRecord(
            blob=blob, created_at=self.now - age, maker_node=maker, artifact_uuid=artifact
        )
        assert await self.store.commit([Put(key("blob", name), record.SerializeToString(), 0)])
        return name

    async def snapshot_artifact(self, *versions: str) -> str:
        """A snapshot artifact with `versions` (blob uuids): `initial`
        without any, `created` with some."""
        name = str(uuid.uuid4())
        state = (
            artifact_pb2.ARTIFACT_STATE_CREATED if versions else artifact_pb2.ARTIFACT_STATE_INITIAL
        )
        record = records_pb2.ArtifactRecord(
            artifact=artifact_pb2.Artifact(
                uuid=name, state=state, artifact_type=artifact_pb2.ARTIFACT_TYPE_SNAPSHOT
            )
        )
        for index, blob in enumerate(versions, start=1):
            record.versions.add(index=index, blob_uuid=blob)
        assert await self.store.commit([Put(key("artifact", name), record.SerializeToString(), 0)])
        return name

    async def artifact(self, name: str) -> artifact_pb2.Artifact:
        item = await self.store.get(key("artifact", name))
        assert item is not None
        return records_pb2.ArtifactRecord.FromString(item.value).artifact

    async def state(self, name: str) -> int:
        item = await self.store.get(key("blob", name))
        assert item is not None
        return records_pb2.BlobRecord.FromString(item.value).blob.state


@pytest.fixture(scope="module")
def own_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An etcd of this module's own: every node record is read for its
    last report, and a silent one condemns what it was making."""
    with started_etcd(tmp_path_factory.mktemp("abandoned-etcd")) as address:
        yield address


@pytest.fixture
async def mesh(own_etcd: str, tmp_path: Path) -> AsyncIterator[Mesh]:
    store = Store(own_etcd)
    built = Mesh(store, tmp_path)
    yield built
    for node in built.nodes:
        await node.peers.close()
    await store.close()


def marked(node: Node) -> dict[str, dict[str, Any]]:
    """The blobs `node` marked abandoned, with their events' extra."""
    return {uuid_: extra for _, uuid_, _, message, extra in node.events.events if message == EVENT}


async def test_a_maker_whose_agent_restarted_fails_the_copies_it_no_longer_makes(
    mesh: Mesh,
) -> None:
    maker, other = await mesh.node(), await mesh.node()
    lost = await mesh.reserved(maker.name, age=GRACE + 1)
    running = await mesh.reserved(maker.name, age=GRACE + 1)
    young = await mesh.reserved(maker.name, age=GRACE - 1)
    maker.making.add(running)

    await other.care.tick()  # a live maker's blobs are its own to judge
    assert marked(other) == {}
    await maker.care.tick()
    assert [await mesh.state(b) for b in (lost, running, young)] == [ERROR, INITIAL, INITIAL]
    extra = marked(maker)[lost]
    assert extra["maker_node"] == maker.name and extra["node"] == maker.name
    assert extra["reason"].startswith(f"node {maker.name}, its maker, is not making it")
    assert list(marked(maker)) == [lost]

    maker.making.clear()  # the agent restarted: the new process makes nothing
    mesh.now += 2
    await maker.care.tick()
    assert [await mesh.state(b) for b in (running, young)] == [ERROR, ERROR]


async def test_a_gone_maker_s_blobs_are_failed_once_by_the_others(mesh: Mesh) -> None:
    a, c = await mesh.node(), await mesh.node()
    gone, quiet, unknown = (f"{role}-{uuid.uuid4().hex[:6]}" for role in ("gone", "quiet", "x"))
    await mesh.record_node(gone, alive=False, silent_for=GRACE + 5)
    await mesh.record_node(quiet, alive=False, silent_for=GRACE - 5)  # its grace runs still
    by_gone = await mesh.reserved(gone, age=2 * GRACE)
    by_quiet = await mesh.reserved(quiet, age=2 * GRACE)
    by_unknown = await mesh.reserved(unknown, age=GRACE)

    await asyncio.gather(a.care.tick(), c.care.tick())
    assert await mesh.state(by_gone) == ERROR
    assert await mesh.state(by_unknown) == ERROR
    assert await mesh.state(by_quiet) == INITIAL
    both = [*marked(a).items(), *marked(c).items()]
    assert sorted(uuid_ for uuid_, _ in both) == sorted([by_gone, by_unknown])  # once each
    reasons = {uuid_: extra["reason"] for uuid_, extra in both}
    assert reasons[by_gone] == f"node {gone}, its maker, is gone: no report for {GRACE + 5:.0f} s"
    assert reasons[by_unknown] == f"node {unknown}, its maker, has no node record"

    mesh.now += 10  # the quiet maker's grace is over now
    await a.care.tick()
    assert await mesh.state(by_quiet) == ERROR


async def test_the_file_a_dying_maker_adopted_goes_after_the_delete_grace(mesh: Mesh) -> None:
    maker = await mesh.node()
    name = await mesh.reserved(maker.name, age=GRACE + 1)
    with maker.blobs.writer(name) as writer:  # adopted; the outcome never recorded
        writer.write(b"a snapshot copy")
        writer.commit()
    await maker.care.tick()
    assert await mesh.state(name) == ERROR
    assert maker.blobs.path(name).exists()  # kept through the grace, like a deleted blob's
    mesh.now += DELETE_GRACE + 1
    await maker.care.tick()
    assert not maker.blobs.path(name).exists()


async def test_an_abandoned_first_snapshot_fails_its_artifact_too(mesh: Mesh) -> None:
    """The artifact of a first snapshot lost with its maker would stay
    `initial` with no version for ever: it becomes `error` in the same
    transaction as its blob. One with versions keeps its state."""
    maker = await mesh.node()
    first = await mesh.snapshot_artifact()
    later = await mesh.snapshot_artifact(str(uuid.uuid4()))
    lost_first = await mesh.reserved(maker.name, age=GRACE + 1, artifact=first)
    lost_later = await mesh.reserved(maker.name, age=GRACE + 1, artifact=later)
    await maker.care.tick()
    assert [await mesh.state(b) for b in (lost_first, lost_later)] == [ERROR, ERROR]
    failed = await mesh.artifact(first)
    assert failed.state == artifact_pb2.ARTIFACT_STATE_ERROR
    assert failed.error_message.startswith(f"{EVENT}: node {maker.name}, its maker, is not making")
    assert (await mesh.artifact(later)).state == artifact_pb2.ARTIFACT_STATE_CREATED
    changed = [
        (event.object_uuid, event.extra["value"])
        for event in maker.events.events
        if event.object_type == "artifact" and event.message == "set attribute"
    ]
    assert changed == [(first, "error")]
