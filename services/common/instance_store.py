"""Instance records in etcd, `/sfmesh/v1/instance/<uuid>` (see README.md):
written by the api (create, delete, metadata) and by node agents (the states
they walk an instance through). Every update is a compare-and-swap on the
record's mod_revision, so concurrent writers never lose an update."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from sfmesh.v1 import instance_pb2, records_pb2

from services.common import errors
from services.common.store import Delete, Operation, Put, Store, key, kind_prefix


@dataclass(frozen=True)
class StoredInstance:
    """An instance record with the revision it was read at."""

    record: records_pb2.InstanceRecord
    mod_revision: int


class InstanceStore:
    """Instance records in etcd."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, uuid: str) -> StoredInstance | None:
        """The record of one instance, or None."""
        item = await self._store.get(key("instance", uuid))
        if item is None:
            return None
        return StoredInstance(records_pb2.InstanceRecord.FromString(item.value), item.mod_revision)

    async def all(self, *, after: str = "") -> AsyncIterator[StoredInstance]:
        """Every instance record in UUID order (past `after` when given), read in pages."""
        async for item in self._store.list_prefix(kind_prefix("instance"), after=after.encode()):
            yield StoredInstance(
                records_pb2.InstanceRecord.FromString(item.value), item.mod_revision
            )

    async def snapshot(self) -> tuple[list[StoredInstance], int]:
        """Every instance record, and the etcd revision they were read at."""
        found = await self._store.snapshot(kind_prefix("instance"))
        records = [
            StoredInstance(records_pb2.InstanceRecord.FromString(item.value), item.mod_revision)
            for item in found.items
        ]
        return records, found.revision

    async def changes(
        self, *, after: int, uuid: str | None = None
    ) -> AsyncIterator[tuple[records_pb2.InstanceRecord | None, records_pb2.InstanceRecord | None]]:
        """(before, after) records of every change after revision `after`, of
        every instance or only `uuid`; None stands for "did not exist"."""
        prefix = key("instance", uuid) if uuid else kind_prefix("instance")
        async for change in self._store.watch_prefix(prefix, start_revision=after + 1):
            yield _decoded(change.previous), _decoded(change.value)

    async def watch(self, *, after: int) -> AsyncIterator[tuple[str, StoredInstance | None]]:
        """(uuid, record as now stored) for every change after revision
        `after`; None when the record was removed."""
        prefix = kind_prefix("instance")
        async for change in self._store.watch_prefix(prefix, start_revision=after + 1):
            uuid = change.key[len(prefix) :].decode()
            record = _decoded(change.value)
            yield uuid, None if record is None else StoredInstance(record, change.mod_revision)

    async def create(self, record: records_pb2.InstanceRecord, *also: Put) -> bool:
        """Write a new record, an index entry per NIC, and `also`, in one
        transaction; False, with nothing written, when the uuid is taken or an
        expectation of `also` fails."""
        uuid = record.instance.uuid
        put = Put(key("instance", uuid), record.SerializeToString(), 0)
        index = [
            Put(key("interface", nic.uuid), uuid.encode(), 0) for nic in record.instance.interfaces
        ]
        return await self._store.commit([put, *index, *also])

    async def holding(self, interface_uuid: str) -> StoredInstance | None:
        """The instance whose NIC `interface_uuid` is, through the index."""
        item = await self._store.get(key("interface", interface_uuid))
        return None if item is None else await self.get(item.value.decode())

    async def replace(
        self, stored: StoredInstance, record: records_pb2.InstanceRecord, *also: Operation
    ) -> bool:
        """Write `record` over `stored`, and `also` in the same transaction;
        False, with nothing written, when someone wrote in between or an
        expectation of `also` fails."""
        put = Put(
            key("instance", record.instance.uuid), record.SerializeToString(), stored.mod_revision
        )
        return await self._store.commit([put, *also])

    async def remove(self, stored: StoredInstance) -> bool:
        """Delete a record as read, and its NICs' index entries; False when it
        changed in between."""
        uuid = stored.record.instance.uuid
        index = [Delete(key("interface", nic.uuid)) for nic in stored.record.instance.interfaces]
        return await self._store.commit(
            [Delete(key("instance", uuid), stored.mod_revision), *index]
        )

    async def update(
        self,
        stored: StoredInstance,
        change: Callable[[records_pb2.InstanceRecord], None],
        *,
        also: Callable[[], Sequence[Operation]] | None = None,
    ) -> records_pb2.InstanceRecord:
        """Apply `change` to a copy of the record and write it with
        compare-and-swap (with what `also` gives after it, in the same
        transaction), re-reading and re-applying when another writer got
        there first; `change` may raise to refuse."""
        return await self._store.update(
            key("instance", stored.record.instance.uuid),
            stored.record,
            stored.mod_revision,
            change,
            lambda: errors.NotFound("instance not found"),
            also=also,
        )


def _decoded(value: bytes | None) -> records_pb2.InstanceRecord | None:
    return None if value is None else records_pb2.InstanceRecord.FromString(value)


def interface_of(record: records_pb2.InstanceRecord, uuid: str) -> instance_pb2.Interface:
    """The NIC `uuid` of an instance record (404 when it has none). Pure."""
    for nic in record.instance.interfaces:
        if nic.uuid == uuid:
            return nic
    raise errors.NotFound("interface not found")
