"""This node's entry in a blob record's `locations`, written by
compare-and-swap (`Store.update`): added once a whole, checked copy is
under the blob's name here, dropped when the copy is gone, wrong or being
removed. Adding is refused for a blob no longer `created`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from sfmesh.v1 import artifact_pb2, records_pb2

from services.common import errors
from services.common.store import Store, key


class _Unchanged(Exception):
    """Nothing to write."""


class NotCreated(Exception):
    """The blob is gone or no longer `created`."""


class BlobLocations:
    """Adds and drops node `node` in blob records' `locations`."""

    def __init__(self, store: Store, node: str) -> None:
        self._store = store
        self._node = node

    async def add(self, uuid: str) -> None:
        """List this node as holding blob `uuid`. Raises NotCreated."""

        def change(record: records_pb2.BlobRecord) -> None:
            if record.blob.state != artifact_pb2.BLOB_STATE_CREATED:
                raise NotCreated(f"blob {uuid} is no longer created")
            if self._node in record.blob.locations:
                raise _Unchanged
            record.blob.locations.append(self._node)

        await self._update(uuid, change)

    async def drop(self, uuid: str) -> None:
        """Stop listing this node as holding blob `uuid`; no-op when it is
        not listed or the record is gone."""

        def change(record: records_pb2.BlobRecord) -> None:
            if self._node not in record.blob.locations:
                raise _Unchanged
            kept = [name for name in record.blob.locations if name != self._node]
            del record.blob.locations[:]
            record.blob.locations.extend(kept)

        with contextlib.suppress(NotCreated):
            await self._update(uuid, change)

    async def _update(self, uuid: str, change: Callable[[records_pb2.BlobRecord], None]) -> None:
        at = key("blob", uuid)
        item = await self._store.get(at)
        if item is None:
            raise NotCreated(f"blob {uuid} not found")
        record = records_pb2.BlobRecord.FromString(item.value)
        try:
            await self._store.update(
                at,
                record,
                item.mod_revision,
                change,
                lambda: errors.NotFound(f"blob {uuid} not found"),
            )
        except _Unchanged:
            return
        except errors.NotFound as exc:
            raise NotCreated(str(exc)) from None
