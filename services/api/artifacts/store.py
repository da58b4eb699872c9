"""The etcd records of artifacts and blobs: `/sfmesh/v1/artifact/<uuid>` (an
`ArtifactRecord`), `/sfmesh/v1/blob/<uuid>` (a `BlobRecord`) and
`/sfmesh/v1/artifact_source/<namespace>/<type>/<sha256 of source_url>` (the
uuid of the one live artifact of that type and source in that namespace).

The source key is what makes find-or-create safe: a new artifact is written
together with its source key, create-only (or over a stale key, one naming
an artifact that is gone, deleted or in error, compared on its revision), so
two concurrent creates of one URL never make two artifacts. An artifact and
the blobs whose reference counts it changes are written in one transaction.
A deleted artifact's source key stays: it names an artifact that is not
live, which the next create of that source replaces; it goes with the
artifact's record when that is hard-deleted (`remove`).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

from sfmesh.v1 import artifact_pb2, node_service_pb2, records_pb2

from services.common import artifact_versions, errors
from services.common.store import Delete, Operation, Put, Store, key, kind_prefix

ATTEMPTS = 8
"""Tries of a transaction over several records when another writer got
there first."""


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact record with the revision it was read at."""

    record: records_pb2.ArtifactRecord
    mod_revision: int


@dataclass(frozen=True)
class StoredBlob:
    """A blob record with the revision it was read at."""

    record: records_pb2.BlobRecord
    mod_revision: int


def source_key(namespace: str, artifact_type: int, source_url: str) -> bytes:
    """The key naming the artifact of `source_url` of a type in a namespace."""
    digest = hashlib.sha256(source_url.encode()).hexdigest()
    return key("artifact_source", f"{namespace}/{artifact_type}/{digest}")


def artifact_put(record: records_pb2.ArtifactRecord, mod_revision: int | None) -> Put:
    """The write of an artifact record (0: it must be new)."""
    return Put(key("artifact", record.artifact.uuid), record.SerializeToString(), mod_revision)


def blob_put(stored: StoredBlob, record: records_pb2.BlobRecord) -> Put:
    """The write of a changed blob record, as read at `stored`."""
    return Put(key("blob", record.blob.uuid), record.SerializeToString(), stored.mod_revision)


class ArtifactStore:
    """Artifact and blob records in etcd."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def nodes(self) -> list[str]:
        """The nodes that may be asked to fetch (`created_nodes`)."""
        return await created_nodes(self._store)

    async def get(self, uuid: str) -> StoredArtifact | None:
        """One artifact, or None."""
        item = await self._store.get(key("artifact", uuid))
        if item is None:
            return None
        return StoredArtifact(records_pb2.ArtifactRecord.FromString(item.value), item.mod_revision)

    async def all(self) -> AsyncIterator[StoredArtifact]:
        """Every artifact record, in UUID order, read in pages."""
        async for item in self._store.list_prefix(kind_prefix("artifact")):
            yield StoredArtifact(
                records_pb2.ArtifactRecord.FromString(item.value), item.mod_revision
            )

    async def get_blob(self, uuid: str) -> StoredBlob | None:
        """One blob, or None."""
        item = await self._store.get(key("blob", uuid))
        if item is None:
            return None
        return StoredBlob(records_pb2.BlobRecord.FromString(item.value), item.mod_revision)

    async def blobs(self, uuids: Sequence[str]) -> dict[str, StoredBlob]:
        """The blobs of `uuids` that exist, by uuid."""
        found = {}
        for uuid in dict.fromkeys(uuids):
            stored = await self.get_blob(uuid)
            if stored is not None:
                found[uuid] = stored
        return found

    async def all_blobs(self) -> AsyncIterator[StoredBlob]:
        """Every blob record, in UUID order, read in pages."""
        async for item in self._store.list_prefix(kind_prefix("blob")):
            yield StoredBlob(records_pb2.BlobRecord.FromString(item.value), item.mod_revision)

    async def put_blob(self, record: records_pb2.BlobRecord) -> bool:
        """Write a new blob record; False when the uuid is taken."""
        put = Put(key("blob", record.blob.uuid), record.SerializeToString(), 0)
        return await self._store.commit([put])

    async def source_claim(
        self, namespace: str, artifact_type: int, source_url: str, uuid: str
    ) -> tuple[Put, str]:
        """The write that makes `uuid` the artifact of a source, and the uuid
        the key names now ("" when none): a create writes the claim only
        when that one is not live (the caller checks), and the claim fails
        the transaction if the key changed meanwhile."""
        at = source_key(namespace, artifact_type, source_url)
        item = await self._store.get(at)
        if item is None:
            return Put(at, uuid.encode(), 0), ""
        return Put(at, uuid.encode(), item.mod_revision), item.value.decode()

    async def remove(self, stored: StoredArtifact) -> bool:
        """Forget an artifact as read (a hard delete), and its source key
        while that still names it; False when either changed in between."""
        artifact = stored.record.artifact
        doomed: list[Operation] = [Delete(key("artifact", artifact.uuid), stored.mod_revision)]
        at = source_key(artifact.namespace, artifact.artifact_type, artifact.source_url)
        item = await self._store.get(at)
        if item is not None and item.value.decode() == artifact.uuid:
            doomed.append(Delete(at, item.mod_revision))
        return await self._store.commit(doomed)

    async def remove_blob(self, stored: StoredBlob) -> bool:
        """Forget a blob's record as read (a hard delete); False when it
        changed in between."""
        return await self._store.commit(
            [Delete(key("blob", stored.record.blob.uuid), stored.mod_revision)]
        )

    async def commit(self, operations: Sequence[Operation]) -> bool:
        """Apply every write in one transaction; False when one changed."""
        return await self._store.commit(operations)

    async def update(
        self,
        stored: StoredArtifact,
        change: Callable[[records_pb2.ArtifactRecord], None],
    ) -> records_pb2.ArtifactRecord:
        """Apply `change` with compare-and-swap (see `Store.update`)."""
        return await self._store.update(
            key("artifact", stored.record.artifact.uuid),
            stored.record,
            stored.mod_revision,
            change,
            lambda: errors.NotFound("artifact not found"),
        )

    async def update_blob(
        self, stored: StoredBlob, change: Callable[[records_pb2.BlobRecord], None]
    ) -> records_pb2.BlobRecord:
        """Apply `change` to a blob with compare-and-swap."""
        return await self._store.update(
            key("blob", stored.record.blob.uuid),
            stored.record,
            stored.mod_revision,
            change,
            lambda: errors.NotFound("blob not found"),
        )

    async def change(
        self,
        uuid: str,
        change: Callable[[records_pb2.ArtifactRecord], Mapping[str, int]],
        *,
        now: float,
    ) -> records_pb2.ArtifactRecord:
        """Apply `change` to a copy of artifact `uuid`; it answers the
        reference count changes of blobs it made (+1 per version added, -1
        per version let go of), which are written with the artifact in one
        transaction, each record compared on its revision; read again and
        re-applied when another writer got there first. `change` may raise
        to refuse. Adding a reference to a deleted blob is a 409; blobs whose
        record is gone are skipped."""
        for _ in range(ATTEMPTS):
            stored = await self.get(uuid)
            if stored is None:
                raise errors.NotFound("artifact not found")
            record = records_pb2.ArtifactRecord()
            record.CopyFrom(stored.record)
            deltas = change(record)
            writes = [artifact_put(record, stored.mod_revision)]
            writes += await self.reference_writes(deltas, now=now)
            if await self.commit(writes):
                return record
        raise errors.Aborted(f"artifact {uuid} kept changing; try again")

    async def reference_writes(self, deltas: Mapping[str, int], *, now: float) -> list[Put]:
        """The writes that change each blob's reference count by its delta
        (`artifact_versions.change_references`), each compared on the
        revision read now; blobs whose record is gone are skipped. A thin
        blob this deletes lets go of its parent's reference, up the chain
        (reference §9.3), in the same writes."""
        read: dict[str, StoredBlob] = {}
        changed: dict[str, records_pb2.BlobRecord] = {}
        pending = [(blob_uuid, delta) for blob_uuid, delta in deltas.items() if delta]
        while pending:
            blob_uuid, delta = pending.pop(0)
            if blob_uuid not in changed:
                stored = await self.get_blob(blob_uuid)
                if stored is None:
                    continue
                read[blob_uuid] = stored
                changed[blob_uuid] = records_pb2.BlobRecord()
                changed[blob_uuid].CopyFrom(stored.record)
            record = changed[blob_uuid]
            if delta > 0 and record.blob.state == artifact_pb2.BLOB_STATE_DELETED:
                raise errors.Conflict(f"blob {blob_uuid} is deleted", reason="BLOB_DELETED")
            parent = artifact_versions.change_references(record, delta, now)
            if parent:
                pending.append((parent, -1))
        return [blob_put(read[blob_uuid], record) for blob_uuid, record in changed.items()]


def deltas_of(*, added: Sequence[str] = (), released: Sequence[str] = ()) -> dict[str, int]:
    """Reference count changes: +1 per blob in `added`, -1 per blob in
    `released` (a blob named twice changes twice). Pure."""
    found: dict[str, int] = {}
    for blob_uuid in added:
        found[blob_uuid] = found.get(blob_uuid, 0) + 1
    for blob_uuid in released:
        found[blob_uuid] = found.get(blob_uuid, 0) - 1
    return found


async def created_nodes(store: Store) -> list[str]:
    """The names of the nodes whose record, as the scheduler keeps it at
    `/sfmesh/v1/node/<name>`, says `created`: those that may be asked to fetch."""
    found = []
    async for item in store.list_prefix(kind_prefix("node")):
        record = records_pb2.NodeRecord.FromString(item.value)
        if record.state == node_service_pb2.NODE_STATE_CREATED:
            found.append(record.name)
    return found
