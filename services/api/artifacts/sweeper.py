"""The artifacts' sweep (reference §9.7), every `interval` seconds:

1. live artifacts of a namespace that is gone are deleted, as the
   namespace's delete does (`deletion.py`): this finishes a namespace delete
   that stopped half-way, and catches an artifact made while its namespace
   was being deleted;
2. artifact records `deleted` for longer than `hard_delete_delay` and named
   by no instance are forgotten (event `hard deleted object`), each with its
   source key;
3. then blob records deleted for longer than that delay and the node
   agents' grace, which nothing names any more (`hard_deletes.py`);
4. blobs whose expiry has passed (screenshots) are deleted (event
   `expired`); step 3 of a later sweep forgets them.

Every removal is compared on the revision the sweep read, so a record that
changed meanwhile stays until the next sweep; several api replicas may
sweep at once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sfmesh.v1 import records_pb2

from services.api.artifacts import hard_deletes
from services.api.artifacts.deletion import BY_NAMESPACE, ArtifactDeletion
from services.api.artifacts.store import ArtifactStore, StoredBlob, blob_put
from services.api.clients.events import ARTIFACT, BLOB, Events
from services.api.namespaces.store import NamespaceStore
from services.api.sweeps import sweep_every
from services.common import errors
from services.common.instance_store import InstanceStore

HARD_DELETED = "hard deleted object"
EXPIRED = "expired"


@dataclass(frozen=True)
class SweepSettings:
    """When deleted artifacts and blobs are forgotten."""

    hard_delete_delay: float = 3600.0
    """Seconds a deleted artifact or blob stays readable by UUID before its
    record is removed (Shaken Fist's CLEANER_DELAY)."""
    blob_delete_grace: float = 3600.0
    """The node agents' grace for files of deleted blobs (their setting of
    the same name): a blob's record stays at least this long after its
    deletion, so no file looks orphaned sooner."""
    interval: float = 300.0
    """Seconds between two sweeps."""


@dataclass(frozen=True)
class Swept:
    """What one sweep did."""

    deleted: int = 0
    """Live artifacts of gone namespaces deleted."""
    artifacts: int = 0
    """Artifact records removed."""
    blobs: int = 0
    """Blob records removed."""
    expired: int = 0
    """Blobs deleted at their expiry."""


class ArtifactSweeper:
    """Sweeps artifact and blob records."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        namespaces: NamespaceStore,
        instances: InstanceStore,
        deletion: ArtifactDeletion,
        events: Events,
        settings: SweepSettings,
    ) -> None:
        self._artifacts = artifacts
        self._namespaces = namespaces
        self._instances = instances
        self._deletion = deletion
        self._events = events
        self._settings = settings

    async def sweep(self, now: float) -> Swept:
        """One sweep, as of `now` (epoch seconds)."""
        deleted = await self._delete_orphans()
        named = hard_deletes.instance_references(
            [stored.record async for stored in self._instances.all()]
        )
        delay, removed, kept = self._settings.hard_delete_delay, 0, []
        async for stored in self._artifacts.all():
            if hard_deletes.artifact_removable(
                stored.record, now, delay, named.artifacts
            ) and await self._artifacts.remove(stored):
                removed += 1
                self._events.audit(stored.record.artifact.uuid, HARD_DELETED, kind=ARTIFACT)
            else:
                kept.append(stored.record)
        blobs = [stored async for stored in self._artifacts.all_blobs()]
        referenced = named.blobs | hard_deletes.blob_references(kept, [b.record for b in blobs])
        wait = hard_deletes.blob_wait(delay, self._settings.blob_delete_grace)
        forgotten = 0
        for blob in blobs:
            if hard_deletes.blob_removable(
                blob.record, now, wait, referenced
            ) and await self._artifacts.remove_blob(blob):
                forgotten += 1
                self._events.audit(blob.record.blob.uuid, HARD_DELETED, kind=BLOB)
        expired = 0
        for blob in blobs:
            if hard_deletes.expired(blob.record, now) and await self._expire(blob, now):
                expired += 1
        return Swept(deleted, removed, forgotten, expired)

    async def _expire(self, stored: StoredBlob, now: float) -> bool:
        """Delete a blob at its expiry, compared on the revision read."""
        record = records_pb2.BlobRecord()
        record.CopyFrom(stored.record)
        hard_deletes.expire(record, now)
        if not await self._artifacts.commit([blob_put(stored, record)]):
            return False
        extra = {"expires_at": record.expires_at}
        self._events.audit(record.blob.uuid, EXPIRED, kind=BLOB, extra=extra)
        return True

    async def _delete_orphans(self) -> int:
        """Delete the live artifacts of namespaces that are gone; how many."""
        namespaces = {record.name: record async for record in self._namespaces.all()}
        orphans = [
            stored.record.artifact.uuid
            async for stored in self._artifacts.all()
            if hard_deletes.orphaned(stored.record, namespaces)
        ]
        deleted = 0
        for uuid in orphans:
            with contextlib.suppress(errors.NotFound, errors.Aborted):  # next sweep, if need be
                await self._deletion.delete(uuid, BY_NAMESPACE)
                deleted += 1
        return deleted

    async def run(self) -> None:
        """Sweep every `interval` seconds until cancelled (`sweep_every`)."""
        await sweep_every(self._settings.interval, self.sweep, "swept artifacts")
