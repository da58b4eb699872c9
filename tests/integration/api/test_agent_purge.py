"""services/api/instances/agent_purge.py against a real etcd: an agent
operation deleted longer than the delay goes with its index entry, a young
one stays, one deleted before `deleted_at` existed is given a time; one
whose instance is gone, or deleted long enough, goes and its output blobs
are released (unless a label holds one); an orphan index entry goes; and a
write that lands between the sweep's read and its removal wins."""

from __future__ import annotations

import time
import uuid as uuid_module
from collections.abc import AsyncIterator, Sequence

import pytest
from sfmesh.v1 import agent_operation_pb2, artifact_pb2, instance_pb2, records_pb2

from services.api.instances import agent_rules
from services.api.instances.agent_purge import AgentOperationPurge, PurgeSettings
from services.common import instance_states as states
from services.common.instance_store import InstanceStore
from services.common.store import Operation, Put, Store, key

NOW = time.time()
DELAY = 600.0
NAMESPACE = "agent-purge-test"
COMPLETE = agent_operation_pb2.AGENT_OPERATION_STATE_COMPLETE
CREATED_BLOB = artifact_pb2.BLOB_STATE_CREATED
DELETED_BLOB = artifact_pb2.BLOB_STATE_DELETED


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    connection = Store(etcd)
    yield connection
    await connection.close()


@pytest.fixture
def purge(store: Store) -> AgentOperationPurge:
    return AgentOperationPurge(store, InstanceStore(store), PurgeSettings(delay=DELAY))


async def instance(store: Store, state: int = states.CREATED, deleted_at: float = 0.0) -> str:
    uuid = str(uuid_module.uuid4())
    view = instance_pb2.Instance(uuid=uuid, namespace=NAMESPACE, node="n", state=state)  # type: ignore[arg-type]
    assert await InstanceStore(store).create(
        records_pb2.InstanceRecord(instance=view, deleted_at=deleted_at)
    )
    return uuid


async def blob(store: Store, *, references: int = 0) -> str:
    uuid = str(uuid_module.uuid4())
    view = artifact_pb2.Blob(uuid=uuid, state=CREATED_BLOB, reference_count=references)
    record = records_pb2.BlobRecord(blob=view, created_at=NOW, owner_namespace=NAMESPACE)
    assert await store.commit([Put(key("blob", uuid), record.SerializeToString(), 0)])
    return uuid


async def operation(
    store: Store,
    instance_uuid: str,
    *,
    deleted_at: float | None = None,
    outputs: Sequence[str] = (),
) -> records_pb2.AgentOperationRecord:
    """A `complete` operation with its index entry; `deleted` at
    `deleted_at` when given (0: deleted without a time, as before the field)."""
    uuid = str(uuid_module.uuid4())
    record = agent_rules.new_record(
        uuid=uuid,
        instance=instance_pb2.Instance(uuid=instance_uuid, namespace=NAMESPACE, node="n"),
        commands=[agent_rules.execute_command("true")],
        deadline_seconds=60,
        now=NOW,
        created_ns=time.time_ns(),
        request_id="test",
    )
    record.operation.state = COMPLETE
    record.output_blobs.extend(outputs)
    if deleted_at is not None:
        agent_rules.mark_deleted(record, deleted_at)
    assert await store.commit(
        [
            Put(key(agent_rules.OPERATION, uuid), record.SerializeToString(), 0),
            Put(key(agent_rules.BY_INSTANCE, record.index_key), uuid.encode(), 0),
        ]
    )
    return record


async def read(store: Store, record: records_pb2.AgentOperationRecord) -> bytes | None:
    item = await store.get(key(agent_rules.OPERATION, record.operation.uuid))
    return None if item is None else item.value


async def indexed(store: Store, record: records_pb2.AgentOperationRecord) -> bool:
    return await store.get(key(agent_rules.BY_INSTANCE, record.index_key)) is not None


async def blob_record(store: Store, uuid: str) -> records_pb2.BlobRecord:
    item = await store.get(key("blob", uuid))
    assert item is not None
    return records_pb2.BlobRecord.FromString(item.value)


async def test_a_deleted_operation_goes_after_the_delay_a_young_one_stays(
    store: Store, purge: AgentOperationPurge
) -> None:
    live = await instance(store)
    old = await operation(store, live, deleted_at=NOW - DELAY - 1)
    young = await operation(store, live, deleted_at=NOW - DELAY + 60)
    kept = await operation(store, live)
    await purge.sweep(NOW)
    assert await read(store, old) is None and not await indexed(store, old)
    for each in (young, kept):
        assert await read(store, each) == each.SerializeToString()
        assert await indexed(store, each)


async def test_a_deletion_without_a_time_is_given_one_and_the_delay_runs_from_it(
    store: Store, purge: AgentOperationPurge
) -> None:
    untimed = await operation(store, await instance(store), deleted_at=0.0)
    await purge.sweep(NOW)
    value = await read(store, untimed)
    assert value is not None
    assert records_pb2.AgentOperationRecord.FromString(value).deleted_at == NOW
    await purge.sweep(NOW + DELAY - 1)
    assert await read(store, untimed) is not None
    await purge.sweep(NOW + DELAY)
    assert await read(store, untimed) is None and not await indexed(store, untimed)


async def test_an_operation_of_a_gone_instance_goes_and_releases_its_output(
    store: Store, purge: AgentOperationPurge
) -> None:
    stdout, content, labelled = (
        await blob(store),
        await blob(store),
        await blob(store, references=1),
    )
    gone = await operation(store, str(uuid_module.uuid4()), outputs=[stdout, content, labelled])
    await purge.sweep(NOW)
    assert await read(store, gone) is None and not await indexed(store, gone)
    for uuid in (stdout, content):
        released = await blob_record(store, uuid)
        assert released.blob.state == DELETED_BLOB and released.deleted_at == NOW
    assert (await blob_record(store, labelled)).blob.state == CREATED_BLOB  # the label's now


async def test_operations_of_a_deleted_instance_go_after_the_delay(
    store: Store, purge: AgentOperationPurge
) -> None:
    long_ago = await instance(store, states.DELETED, NOW - DELAY - 1)
    recently = await instance(store, states.DELETED, NOW - 10)
    output = await blob(store)
    old = await operation(store, long_ago, outputs=[output])
    young = await operation(store, recently)
    await purge.sweep(NOW)
    assert await read(store, old) is None and not await indexed(store, old)
    assert (await blob_record(store, output)).blob.state == DELETED_BLOB
    assert await read(store, young) is not None and await indexed(store, young)


async def test_an_index_entry_without_its_operation_goes(
    store: Store, purge: AgentOperationPurge
) -> None:
    orphan = key(agent_rules.BY_INSTANCE, f"{uuid_module.uuid4()}/00000000000000000001-x")
    assert await store.commit([Put(orphan, str(uuid_module.uuid4()).encode(), 0)])
    assert (await purge.sweep(NOW)).orphans >= 1
    assert await store.get(orphan) is None


async def test_a_write_between_the_read_and_the_removal_wins(
    store: Store, purge: AgentOperationPurge, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, late = await blob(store), await blob(store)
    racing = await operation(store, str(uuid_module.uuid4()), outputs=[first])
    at = key(agent_rules.OPERATION, racing.operation.uuid)
    changed = records_pb2.AgentOperationRecord()
    changed.CopyFrom(racing)
    changed.output_blobs.append(late)  # the node agent recording a result, say
    commit = store.commit

    async def write_first(operations: Sequence[Operation]) -> bool:
        if any(op.key == at for op in operations):
            monkeypatch.setattr(store, "commit", commit)
            assert await commit([Put(at, changed.SerializeToString())])
        return await commit(operations)

    monkeypatch.setattr(store, "commit", write_first)
    await purge.sweep(NOW)
    assert await read(store, racing) == changed.SerializeToString()
    assert await indexed(store, racing)
    assert (await blob_record(store, first)).blob.state == CREATED_BLOB

    await purge.sweep(NOW)  # the next sweep sees the write, and takes both blobs
    assert await read(store, racing) is None and not await indexed(store, racing)
    for uuid in (first, late):
        assert (await blob_record(store, uuid)).blob.state == DELETED_BLOB
