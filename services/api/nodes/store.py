"""Node records in etcd (`/sfmesh/v1/node/<name>`), as the api reads and
writes them: the leading scheduler writes their liveness, the api their
metadata and `deleted`, each by compare-and-swap keeping the other's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from google.protobuf import struct_pb2
from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.presence import presence_key
from services.common.scheduler_policy import POLICY_KEY
from services.common.store import Delete, Put, Store, key, kind_prefix


@dataclass(frozen=True)
class StoredNode:
    """A node record with the revision it was read at."""

    record: records_pb2.NodeRecord
    mod_revision: int


def node_not_found() -> errors.NotFound:
    """The refusal for a node that does not exist (reference §7)."""
    return errors.NotFound("node not found")


class NodeStore:
    """Reads and writes node records."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, name: str) -> StoredNode | None:
        """One node, or None."""
        item = await self._store.get(key("node", name)) if name else None
        if item is None:
            return None
        return StoredNode(records_pb2.NodeRecord.FromString(item.value), item.mod_revision)

    async def find(self, name: str) -> StoredNode:
        """One node; 404 `node not found`."""
        found = await self.get(name)
        if found is None:
            raise node_not_found()
        return found

    async def process_metrics(self, name: str) -> struct_pb2.Struct:
        """The process metrics node `name`'s agent last recorded
        (`/sfmesh/v1/processmetrics/<name>`); empty when it never did."""
        item = await self._store.get(key("processmetrics", name))
        if item is None:
            return struct_pb2.Struct()
        return records_pb2.ProcessMetricsRecord.FromString(item.value).metrics

    async def placement_policy(self) -> records_pb2.SchedulerPolicyRecord | None:
        """The policy the leading scheduler places by, as its term began
        (`services/common/scheduler_policy.py`); None before any scheduler led."""
        item = await self._store.get(POLICY_KEY)
        return None if item is None else records_pb2.SchedulerPolicyRecord.FromString(item.value)

    async def all(self) -> AsyncIterator[StoredNode]:
        """Every node record."""
        async for item in self._store.list_prefix(kind_prefix("node")):
            yield StoredNode(records_pb2.NodeRecord.FromString(item.value), item.mod_revision)

    async def update(
        self, stored: StoredNode, change: Callable[[records_pb2.NodeRecord], None]
    ) -> records_pb2.NodeRecord:
        """Apply `change` with compare-and-swap (see `Store.update`)."""
        return await self._store.update(
            key("node", stored.record.name),
            stored.record,
            stored.mod_revision,
            change,
            node_not_found,
        )

    async def delete(self, stored: StoredNode, record: records_pb2.NodeRecord) -> bool:
        """Write `record` (the node `deleted`) and remove its presence key in
        one transaction, which is how the leading scheduler hears of it: it
        ends the node's stream and never lets it back. False when the record
        changed since it was read."""
        name = stored.record.name
        return await self._store.commit(
            [
                Put(key("node", name), record.SerializeToString(), stored.mod_revision),
                Delete(presence_key(name)),
            ]
        )
