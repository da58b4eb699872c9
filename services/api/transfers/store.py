"""The etcd records of uploads: `/sfmesh/v1/upload/<uuid>` (an `UploadRecord`:
the view, the owning namespace, when bytes last arrived).

The record says how many bytes the upload's owner was told it holds; the
file on the upload's node holds them (`uploads.py` keeps the two in step).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sfmesh.v1 import records_pb2

from services.api.transfers import rules
from services.common.store import Delete, Put, Store, key, kind_prefix


@dataclass(frozen=True)
class StoredUpload:
    """An upload record with the revision it was read at."""

    record: records_pb2.UploadRecord
    mod_revision: int


def upload_key(uuid: str) -> bytes:
    """Where upload `uuid` lives."""
    return key("upload", uuid)


def upload_delete(stored: StoredUpload) -> Delete:
    """The removal of an upload record as read at `stored`."""
    return Delete(upload_key(stored.record.upload.uuid), stored.mod_revision)


class UploadStore:
    """Upload records in etcd."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, uuid: str) -> StoredUpload | None:
        """One upload, or None."""
        item = await self._store.get(upload_key(uuid)) if uuid else None
        if item is None:
            return None
        return StoredUpload(records_pb2.UploadRecord.FromString(item.value), item.mod_revision)

    async def create(self, record: records_pb2.UploadRecord) -> bool:
        """Write a new upload; False when the uuid is taken."""
        put = Put(upload_key(record.upload.uuid), record.SerializeToString(), 0)
        return await self._store.commit([put])

    async def update(
        self, stored: StoredUpload, change: Callable[[records_pb2.UploadRecord], None]
    ) -> records_pb2.UploadRecord:
        """Apply `change` with compare-and-swap; 404 when the upload went."""
        return await self._store.update(
            upload_key(stored.record.upload.uuid),
            stored.record,
            stored.mod_revision,
            change,
            rules.upload_not_found,
        )

    async def delete(self, stored: StoredUpload) -> bool:
        """Remove the upload as read at `stored`; False when it changed."""
        return await self._store.commit([upload_delete(stored)])

    async def all(self) -> AsyncIterator[StoredUpload]:
        """Every upload record, read in pages."""
        async for item in self._store.list_prefix(kind_prefix("upload")):
            yield StoredUpload(records_pb2.UploadRecord.FromString(item.value), item.mod_revision)
