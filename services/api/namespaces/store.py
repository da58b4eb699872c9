"""The namespace records the api owns, `/sfmesh/v1/namespace/<name>` (see
services/common/README.md). Every update is a compare-and-swap on the
record's mod_revision."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.instance_store import InstanceStore
from services.common.store import Put, Store, key, kind_prefix


class NamespaceStore:
    """Namespace records in etcd."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, name: str) -> records_pb2.NamespaceRecord | None:
        """One namespace, or None."""
        item = await self._store.get(key("namespace", name))
        if item is None:
            return None
        return records_pb2.NamespaceRecord.FromString(item.value)

    async def create(self, record: records_pb2.NamespaceRecord) -> bool:
        """Write a new namespace; False when the name is taken."""
        put = Put(key("namespace", record.name), record.SerializeToString(), 0)
        return await self._store.commit([put])

    @dataclass(frozen=True)
    class Stored:
        """A namespace record with the revision it was read at."""

        record: records_pb2.NamespaceRecord
        mod_revision: int

    async def get_stored(self, name: str) -> NamespaceStore.Stored | None:
        """One namespace with its revision, for a later `update`; or None."""
        item = await self._store.get(key("namespace", name))
        if item is None:
            return None
        return self.Stored(records_pb2.NamespaceRecord.FromString(item.value), item.mod_revision)

    async def all(self) -> AsyncIterator[records_pb2.NamespaceRecord]:
        """Every namespace record, in name order, read in pages."""
        async for item in self._store.list_prefix(kind_prefix("namespace")):
            yield records_pb2.NamespaceRecord.FromString(item.value)

    async def snapshot(self) -> tuple[list[records_pb2.NamespaceRecord], int]:
        """Every namespace record, and the etcd revision they were read at."""
        found = await self._store.snapshot(kind_prefix("namespace"))
        records = [records_pb2.NamespaceRecord.FromString(item.value) for item in found.items]
        return records, found.revision

    async def changes(
        self, *, after: int
    ) -> AsyncIterator[tuple[str, records_pb2.NamespaceRecord | None]]:
        """(name, record) of every namespace change after revision `after`;
        None when the record was removed."""
        prefix = kind_prefix("namespace")
        async for change in self._store.watch_prefix(prefix, start_revision=after + 1):
            name = change.key[len(prefix) :].decode()
            if change.value is None:
                yield name, None
            else:
                yield name, records_pb2.NamespaceRecord.FromString(change.value)

    async def replace(
        self, stored: NamespaceStore.Stored, record: records_pb2.NamespaceRecord
    ) -> bool:
        """Write `record` over `stored`; False when someone wrote in between."""
        put = Put(key("namespace", record.name), record.SerializeToString(), stored.mod_revision)
        return await self._store.commit([put])

    async def update(
        self,
        stored: NamespaceStore.Stored,
        change: Callable[[records_pb2.NamespaceRecord], None],
    ) -> records_pb2.NamespaceRecord:
        """Apply `change` to a copy of the record and write it with
        compare-and-swap, re-reading and re-applying when another writer got
        there first; `change` may raise to refuse."""
        return await self._store.update(
            key("namespace", stored.record.name),
            stored.record,
            stored.mod_revision,
            change,
            lambda: errors.NotFound("namespace not found", reason="NAMESPACE_NOT_FOUND"),
        )

    async def network_states(self, name: str) -> list[int]:
        """The states of every network of namespace `name` (a full scan)."""
        states: list[int] = []
        async for item in self._store.list_prefix(kind_prefix("network")):
            network = records_pb2.NetworkRecord.FromString(item.value).network
            if network.namespace == name:
                states.append(network.state)
        return states

    async def instance_states(self, name: str) -> list[int]:
        """The states of every instance of namespace `name` (a full scan)."""
        return [
            stored.record.instance.state
            async for stored in InstanceStore(self._store).all()
            if stored.record.instance.namespace == name
        ]
