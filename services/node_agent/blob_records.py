"""Artifact and blob records as this node agent reads and writes them:
`/sfmesh/v1/artifact/<uuid>` and `/sfmesh/v1/blob/<uuid>`
(`services/common/README.md`). Each write is one compare-and-swap
transaction over every record it changes, re-read and re-decided
(``fetch_outcome.py``) when another writer got there first."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.store import Operation, Put, Store, key, kind_prefix
from services.node_agent import fetch_outcome
from services.node_agent.fetch_outcome import Fetched
from services.node_agent.freshness import check_due

R = TypeVar("R", records_pb2.ArtifactRecord, records_pb2.BlobRecord)


@dataclass(frozen=True)
class Stored(Generic[R]):
    """A record with the revision it was read at."""

    record: R
    mod_revision: int


def _copy(record: R) -> R:
    fresh = type(record)()
    fresh.CopyFrom(record)
    return fresh


class BlobRecords:
    """The artifact and blob records in etcd."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def artifact(self, uuid: str) -> Stored[records_pb2.ArtifactRecord] | None:
        """One artifact record, or None."""
        item = await self._store.get(key("artifact", uuid))
        if item is None:
            return None
        return Stored(records_pb2.ArtifactRecord.FromString(item.value), item.mod_revision)

    async def blob(self, uuid: str) -> Stored[records_pb2.BlobRecord] | None:
        """One blob record, or None."""
        item = await self._store.get(key("blob", uuid))
        if item is None:
            return None
        return Stored(records_pb2.BlobRecord.FromString(item.value), item.mod_revision)

    async def blobs(self, uuids: Iterable[str]) -> dict[str, Stored[records_pb2.BlobRecord] | None]:
        """Several blob records (None where absent)."""
        wanted = sorted(set(uuids))
        found = await asyncio.gather(*(self.blob(uuid) for uuid in wanted))  # one etcd read
        return dict(zip(wanted, found, strict=True))

    async def artifact_snapshot(self) -> tuple[list[records_pb2.ArtifactRecord], int]:
        """Every artifact record, and the revision they were read at."""
        found = await self._store.snapshot(kind_prefix("artifact"))
        return [records_pb2.ArtifactRecord.FromString(i.value) for i in found.items], found.revision

    async def artifact_changes(
        self, *, after: int
    ) -> AsyncIterator[tuple[str, records_pb2.ArtifactRecord | None]]:
        """(uuid, record as now stored, None when removed) for every change
        to an artifact after revision `after`. Raises errors.Aborted when
        etcd compacted that history."""
        prefix = kind_prefix("artifact")
        async for change in self._store.watch_prefix(prefix, start_revision=after + 1):
            uuid = change.key[len(prefix) :].decode()
            value = change.value
            yield uuid, None if value is None else records_pb2.ArtifactRecord.FromString(value)

    async def record_fetch(
        self,
        artifact_uuid: str,
        fetched: Fetched,
        node: str,
        *,
        place: Callable[[str], Awaitable[None]],
        answer_request: bool = False,
        deleted_ok: bool = True,
    ) -> str:
        """Record a download of `artifact_uuid`'s source made on `node`
        (``fetch_outcome.apply_fetched``); the blob it stands for. `place`
        puts the file under that blob's name before anything says this node
        holds it. `answer_request` also clears the artifact's cache request.
        Raises errors.NotFound when the artifact is gone, or deleted unless
        `deleted_ok`."""
        while True:
            stored = await self.artifact(artifact_uuid)
            deleted = stored is not None and stored.record.artifact.state == fetch_outcome.DELETED
            if stored is None or (deleted and not deleted_ok):
                raise errors.NotFound(f"artifact {artifact_uuid} not found")
            wanted = [version.blob_uuid for version in stored.record.versions]
            read = await self.blobs([*wanted, fetched.blob_uuid])
            artifact = _copy(stored.record)
            blobs = {uuid: _copy(found.record) for uuid, found in read.items() if found}
            target = fetch_outcome.apply_fetched(artifact, blobs, fetched, node, time.time())
            if answer_request:
                fetch_outcome.clear_request(artifact)
            await place(target)
            operations: list[Operation] = [
                Put(
                    key("artifact", artifact_uuid),
                    artifact.SerializeToString(),
                    stored.mod_revision,
                )
            ]
            operations += _changed_blobs(read, blobs)
            if await self._store.commit(operations):
                return target

    async def record_failure(
        self, artifact_uuid: str, message: str, *, answer_request: bool = False
    ) -> None:
        """Record a failed fetch of `artifact_uuid` (``apply_failure``), and
        clear its cache request when `answer_request`; no-op when gone."""

        def change(artifact: records_pb2.ArtifactRecord) -> None:
            changed = fetch_outcome.apply_failure(artifact, message)
            if answer_request and artifact.fetch_node:
                fetch_outcome.clear_request(artifact)
                changed = True
            if not changed:
                raise _Unchanged

        await self._update_artifact(artifact_uuid, change)

    async def claim_check(
        self, artifact_uuid: str, now: float, interval: float
    ) -> records_pb2.ArtifactRecord | None:
        """Stamp `checked_at` = `now` on artifact `artifact_uuid` when a
        check of its source is due (``freshness.check_due``) and it has a
        version to compare, so no other create, here or on another node,
        starts one within `interval`: the record as written; None when not
        due, without versions, deleted or gone."""

        def change(artifact: records_pb2.ArtifactRecord) -> None:
            if artifact.artifact.state == fetch_outcome.DELETED or not artifact.versions:
                raise _Unchanged
            if not check_due(artifact.checked_at, now, interval):
                raise _Unchanged
            artifact.checked_at = now

        return await self._update_artifact(artifact_uuid, change)

    async def record_check(self, artifact_uuid: str, now: float) -> None:
        """Artifact `artifact_uuid`'s source was read at `now`; no-op when gone."""

        def change(artifact: records_pb2.ArtifactRecord) -> None:
            if artifact.checked_at >= now:
                raise _Unchanged
            artifact.checked_at = now

        await self._update_artifact(artifact_uuid, change)

    async def answer_request(self, artifact_uuid: str, node: str) -> None:
        """Clear a cache request of `node` that needs no fetch; no-op when gone."""

        def change(artifact: records_pb2.ArtifactRecord) -> None:
            if artifact.fetch_node != node:
                raise _Unchanged
            fetch_outcome.clear_request(artifact)

        await self._update_artifact(artifact_uuid, change)

    async def reference_operations(self, counts: Mapping[str, int]) -> list[Operation]:
        """Writes adding `counts[uuid]` references to each blob, each
        expecting the record as read now; raise fetch_outcome.BlobUnusable
        when one is gone or not created."""
        read = await self.blobs(counts)
        blobs = {uuid: _copy(found.record) if found else None for uuid, found in read.items()}
        fetch_outcome.add_references(blobs, counts, time.time())
        return _changed_blobs(read, {u: b for u, b in blobs.items() if b is not None})

    async def _update_artifact(
        self, uuid: str, change: Callable[[records_pb2.ArtifactRecord], None]
    ) -> records_pb2.ArtifactRecord | None:
        """`change` applied to artifact `uuid` by compare-and-swap: the
        record written; None when gone or when `change` raised _Unchanged."""
        stored = await self.artifact(uuid)
        if stored is None:
            return None
        with contextlib.suppress(_Unchanged, errors.NotFound):
            return await self._store.update(
                key("artifact", uuid),
                stored.record,
                stored.mod_revision,
                change,
                lambda: errors.NotFound(f"artifact {uuid} not found"),
            )
        return None


class _Unchanged(Exception):
    """Nothing to write."""


def _changed_blobs(
    read: Mapping[str, Stored[records_pb2.BlobRecord] | None],
    blobs: Mapping[str, records_pb2.BlobRecord],
) -> list[Operation]:
    """A compare-and-swap write of each blob of `blobs` that differs from
    what was `read` (a new one expects no key)."""
    operations: list[Operation] = []
    for uuid, blob in sorted(blobs.items()):
        before = read.get(uuid)
        if before is not None and before.record == blob:
            continue
        revision = before.mod_revision if before is not None else 0
        operations.append(Put(key("blob", uuid), blob.SerializeToString(), revision))
    return operations
