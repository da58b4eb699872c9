"""The artifacts' sweep (services/api/artifacts/sweeper.py) on a real etcd
of this module's own (the sweep reads every artifact, blob, instance and
namespace record, so others' records would take part): hard deletes after
the delay and the node agents' grace, only of what nothing names, and the
live artifacts of namespaces that are gone."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sfmesh.v1 import artifact_pb2, instance_pb2, records_pb2

from services.api.artifacts.deletion import ArtifactDeletion
from services.api.artifacts.store import ArtifactStore, source_key
from services.api.artifacts.sweeper import ArtifactSweeper, SweepSettings, Swept
from services.api.clients.events import Events
from services.api.namespaces.store import NamespaceStore
from services.common.config import MeshConfig
from services.common.instance_store import InstanceStore
from services.common.main import service_authority, service_emitter
from services.common.store import Delete, Store, kind_prefix
from services.common.tokens import InternalCredentials
from services.common.transport import Transport
from tests.integration.api.artifact_records import blob_record, put_artifact, put_blob
from tests.meshes import started_etcd

DELAY, GRACE = 3600.0, 7200.0
"""The sweep's delay, and a node agents' grace longer than it."""
NO_EVENTLOG = "127.0.0.1:1"
LIVE, OLD = "live", "old"
"""A live namespace, and a deleted one."""
DELETED = artifact_pb2.BLOB_STATE_DELETED


@dataclass
class Sweep:
    """The sweeper and the stores it reads."""

    store: Store
    artifacts: ArtifactStore
    instances: InstanceStore
    namespaces: NamespaceStore
    sweeper: ArtifactSweeper


@pytest.fixture(scope="module")
def own_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with started_etcd(tmp_path_factory.mktemp("sweep-etcd")) as address:
        yield address


@pytest.fixture
async def sweep(own_etcd: str, tmp_path: Path) -> AsyncIterator[Sweep]:
    store = Store(own_etcd)
    authority = service_authority(tmp_path, Transport())
    mesh = MeshConfig(tmp_path, etcd=(own_etcd,), api="", scheduler="", eventlog=NO_EVENTLOG)
    emitter = service_emitter(mesh, "sweep-test", authority)
    await emitter.start()
    events = Events(
        emitter, NO_EVENTLOG, InternalCredentials(authority, "sweep-test"), transport=Transport()
    )
    artifacts, namespaces = ArtifactStore(store), NamespaceStore(store)
    await namespaces.create(records_pb2.NamespaceRecord(name=LIVE, state="created"))
    await namespaces.create(records_pb2.NamespaceRecord(name=OLD, state="deleted"))
    settings = SweepSettings(hard_delete_delay=DELAY, blob_delete_grace=GRACE, interval=1.0)
    instances = InstanceStore(store)
    sweeper = ArtifactSweeper(
        artifacts, namespaces, instances, ArtifactDeletion(artifacts, events), events, settings
    )
    try:
        yield Sweep(store, artifacts, instances, namespaces, sweeper)
    finally:
        for kind in ("artifact", "artifact_source", "blob", "instance", "namespace"):
            doomed = [Delete(item.key) async for item in store.list_prefix(kind_prefix(kind))]
            if doomed:
                assert await store.commit(doomed)
        await events.close()
        await emitter.close(timeout=0)
        await store.close()


async def _instance(
    sweep: Sweep,
    *,
    source: records_pb2.DiskSource | None = None,
    disk_blob: str = "",
    state: instance_pb2.InstanceState = instance_pb2.INSTANCE_STATE_DELETED,
) -> str:
    instance = instance_pb2.Instance(uuid=str(uuid.uuid4()), name="i", namespace=LIVE, state=state)
    if disk_blob:
        instance.disks.add(blob_uuid=disk_blob)
    record = records_pb2.InstanceRecord(instance=instance)
    if source is not None:
        record.disk_sources.append(source)
    assert await sweep.instances.create(record)
    return instance.uuid


async def _blob(sweep: Sweep, deleted_at: float, *, depends_on: str = "") -> str:
    """A deleted blob with no reference counted."""
    record = blob_record(state=DELETED, deleted_at=deleted_at, depends_on=depends_on)
    return await put_blob(sweep.artifacts, record)


async def test_deleted_artifacts_go_after_the_delay_unless_an_instance_names_them(
    sweep: Sweep,
) -> None:
    now = time.time()
    old = await put_artifact(sweep.artifacts, LIVE, [], deleted_at=now - DELAY - 1, source_key=True)
    recent = await put_artifact(sweep.artifacts, LIVE, [], deleted_at=now - DELAY + 60)
    named = await put_artifact(sweep.artifacts, LIVE, [], deleted_at=now - DELAY - 1)
    live = await put_artifact(sweep.artifacts, LIVE, [])
    holder = await _instance(sweep, source=records_pb2.DiskSource(artifact_uuid=named))
    stored = await sweep.artifacts.get(old)
    assert stored is not None
    artifact = stored.record.artifact
    claim = source_key(artifact.namespace, artifact.artifact_type, artifact.source_url)
    assert await sweep.store.get(claim) is not None

    assert await sweep.sweeper.sweep(now) == Swept(artifacts=1)
    assert await sweep.artifacts.get(old) is None
    assert await sweep.store.get(claim) is None  # its source key went with it
    for kept in (recent, named, live):
        assert await sweep.artifacts.get(kept) is not None

    # The instance record purged, the artifact it named goes at the next sweep.
    found = await sweep.instances.get(holder)
    assert found is not None and await sweep.instances.remove(found)
    assert await sweep.sweeper.sweep(now) == Swept(artifacts=1)
    assert await sweep.artifacts.get(named) is None


async def test_a_source_key_naming_another_artifact_stays(sweep: Sweep) -> None:
    now = time.time()
    old = await put_artifact(sweep.artifacts, LIVE, [], deleted_at=now - DELAY - 1)
    stored = await sweep.artifacts.get(old)
    assert stored is not None
    artifact = stored.record.artifact
    claim, _ = await sweep.artifacts.source_claim(
        artifact.namespace, artifact.artifact_type, artifact.source_url, "the-next-one"
    )
    assert await sweep.artifacts.commit([claim])
    assert await sweep.sweeper.sweep(now) == Swept(artifacts=1)
    key = source_key(artifact.namespace, artifact.artifact_type, artifact.source_url)
    item = await sweep.store.get(key)
    assert item is not None and item.value == b"the-next-one"


async def test_a_record_changed_since_the_sweep_read_it_stays(sweep: Sweep) -> None:
    now = time.time()
    old = await put_artifact(sweep.artifacts, LIVE, [], deleted_at=now - DELAY - 1)
    read = await sweep.artifacts.get(old)
    assert read is not None

    def touch(record: records_pb2.ArtifactRecord) -> None:
        record.artifact.metadata["k"] = "v"

    await sweep.artifacts.update(read, touch)
    assert not await sweep.artifacts.remove(read)
    assert await sweep.artifacts.get(old) is not None
    blob = await sweep.artifacts.get_blob(await _blob(sweep, now - GRACE - 1))
    assert blob is not None
    await sweep.artifacts.update_blob(blob, lambda record: record.blob.locations.append("sf-2"))
    assert not await sweep.artifacts.remove_blob(blob)


async def test_deleted_blobs_go_after_the_grace_when_nothing_names_them(sweep: Sweep) -> None:
    now = time.time()
    gone = now - GRACE - 1
    free = await _blob(sweep, gone)
    within_grace = await _blob(sweep, now - DELAY - 1)  # past the delay, not the grace
    unknown_time = await _blob(sweep, 0.0)
    by_recent_artifact = await _blob(sweep, gone)
    await put_artifact(sweep.artifacts, LIVE, [by_recent_artifact], deleted_at=now - 60)
    by_old_artifact = await _blob(sweep, gone)
    await put_artifact(sweep.artifacts, LIVE, [by_old_artifact], deleted_at=now - DELAY - 1)
    by_disk = await _blob(sweep, gone)
    await _instance(sweep, disk_blob=by_disk)
    by_source = await _blob(sweep, gone)
    await _instance(sweep, source=records_pb2.DiskSource(blob_uuid=by_source))
    parent = await _blob(sweep, gone)
    await put_blob(sweep.artifacts, blob_record(references=1, depends_on=parent))  # a live child
    counted = await put_blob(
        sweep.artifacts, blob_record(state=DELETED, references=1, deleted_at=gone)
    )
    live = await put_blob(sweep.artifacts, blob_record())

    swept = await sweep.sweeper.sweep(now)
    assert swept == Swept(artifacts=1, blobs=2)  # the old artifact, then the blob it held
    assert await sweep.artifacts.get_blob(free) is None
    assert await sweep.artifacts.get_blob(by_old_artifact) is None
    for kept in (
        within_grace,
        unknown_time,
        by_recent_artifact,
        by_disk,
        by_source,
        parent,
        counted,
        live,
    ):
        assert await sweep.artifacts.get_blob(kept) is not None, kept
    assert await sweep.sweeper.sweep(now + GRACE) == Swept(artifacts=1, blobs=2)
    assert await sweep.artifacts.get_blob(within_grace) is None
    assert await sweep.artifacts.get_blob(by_recent_artifact) is None


async def test_live_artifacts_of_a_namespace_gone_are_deleted_once(sweep: Sweep) -> None:
    held = await put_blob(sweep.artifacts, blob_record())
    orphan = await put_artifact(sweep.artifacts, OLD, [held])
    stray = await put_artifact(sweep.artifacts, "never-made", [held])
    kept = await put_artifact(sweep.artifacts, LIVE, [held])
    blob = await sweep.artifacts.get_blob(held)
    assert blob is not None and blob.record.blob.reference_count == 3

    assert await sweep.sweeper.sweep(time.time()) == Swept(deleted=2)
    for deleted in (orphan, stray):
        stored = await sweep.artifacts.get(deleted)
        assert stored is not None
        assert stored.record.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED
    live = await sweep.artifacts.get(kept)
    assert live is not None and live.record.artifact.state == artifact_pb2.ARTIFACT_STATE_CREATED
    blob = await sweep.artifacts.get_blob(held)
    assert blob is not None and blob.record.blob.reference_count == 1
    assert await sweep.sweeper.sweep(time.time()) == Swept()  # once
    blob = await sweep.artifacts.get_blob(held)
    assert blob is not None and blob.record.blob.reference_count == 1


async def test_blobs_are_deleted_at_their_expiry_then_forgotten(sweep: Sweep) -> None:
    now = time.time()
    due = blob_record()
    due.owner_namespace, due.expires_at = LIVE, now - 1  # a screenshot
    expired = await put_blob(sweep.artifacts, due)
    later = blob_record()
    later.owner_namespace, later.expires_at = LIVE, now + 60
    waiting = await put_blob(sweep.artifacts, later)

    assert await sweep.sweeper.sweep(now) == Swept(expired=1)
    stored = await sweep.artifacts.get_blob(expired)
    assert stored is not None
    assert stored.record.blob.state == DELETED
    assert stored.record.deleted_at == now
    kept = await sweep.artifacts.get_blob(waiting)
    assert kept is not None and kept.record.blob.state == artifact_pb2.BLOB_STATE_CREATED
    assert await sweep.sweeper.sweep(now) == Swept()  # once
    assert await sweep.sweeper.sweep(now + GRACE + 1) == Swept(blobs=1, expired=1)
    assert await sweep.artifacts.get_blob(expired) is None
