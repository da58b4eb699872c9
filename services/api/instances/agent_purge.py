"""Forgetting agent operations: every api replica, every `interval` seconds,
removes the records of operations that have been `deleted`, or whose
instance has been `deleted`, for `delay` seconds, and at once those whose
instance's record is gone (the instance purge removed it, `purge.py`), each
with its index entry (`agent_rules.purge_fate` decides).

**Why an hour.** Shaken Fist keeps a deleted object readable until its
cleaner hard-deletes it, `CLEANER_DELAY` (3600 s) after the delete; the
client does not poll a deleted operation, but a script that deleted one may
still read it back. An hour matches that, `--hard-delete-delay` for
artifacts and blobs and `--deleted-retention` for instances, so an
instance's operations go about when its own record does.

**Output blobs.** A removal releases the operation's output blobs in the
same transaction (`agent_rules.release_output`: `deleted` unless a label
holds them), so none outlives the record that names it; the artifacts'
sweep forgets their records later and the node agents their files. A
`DELETE` released them already; an operation of a deleted instance never
was.

**Concurrency.** A removal is one transaction compared on the revision of
the operation record and of each blob it changes, as read: a write in
between (the node agent recording a result, a `DELETE`, another replica's
sweep) wins, and the next sweep looks again. The records are listed in an
order that keeps a sweep from taking a new operation for an orphan: index
entries first, then operations (an operation created since is in neither,
or in the second only), then instances (an operation's instance was
created before it, so it is listed unless it was purged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sfmesh.v1 import records_pb2

from services.api.instances import agent_rules as rules
from services.api.sweeps import sweep_every
from services.common import errors
from services.common.instance_store import InstanceStore
from services.common.store import Delete, Operation, Put, Store, key, kind_prefix

log = logging.getLogger("sfmesh.api.agentops")


@dataclass(frozen=True)
class PurgeSettings:
    """When agent-operation records are forgotten."""

    delay: float = 3600.0
    """Seconds an operation, or its instance, stays `deleted` before the
    operation's record is removed (Shaken Fist's CLEANER_DELAY)."""
    interval: float = 300.0
    """Seconds between two sweeps of a replica."""


@dataclass(frozen=True)
class Purged:
    """What one sweep did."""

    removed: int = 0
    """Operation records removed, with their index entries."""
    released: int = 0
    """Output blobs released by those removals."""
    stamped: int = 0
    """Operations found `deleted` without a time of deletion, given one."""
    orphans: int = 0
    """Index entries removed whose operation record was gone."""


class AgentOperationPurge:
    """Sweeps agent-operation records."""

    def __init__(self, store: Store, instances: InstanceStore, settings: PurgeSettings) -> None:
        self._store = store
        self._instances = instances
        self._settings = settings

    async def sweep(self, now: float) -> Purged:
        """One sweep, as of `now` (epoch seconds)."""
        index = [item async for item in self._store.list_prefix(kind_prefix(rules.BY_INSTANCE))]
        operations = {
            records_pb2.AgentOperationRecord.FromString(item.value).operation.uuid: item
            async for item in self._store.list_prefix(kind_prefix(rules.OPERATION))
        }
        instances = {
            stored.record.instance.uuid: stored.record async for stored in self._instances.all()
        }
        removed = released = stamped = 0
        for item in operations.values():
            record = records_pb2.AgentOperationRecord.FromString(item.value)
            instance = instances.get(record.operation.instance_uuid)
            fate = rules.purge_fate(record, instance, now, self._settings.delay)
            try:
                if fate == rules.Fate.REMOVE:
                    done = await self._remove(record, item.mod_revision, now)
                    if done is not None:
                        removed, released = removed + 1, released + done
                elif fate == rules.Fate.STAMP:
                    record.deleted_at = now
                    put = Put(item.key, record.SerializeToString(), item.mod_revision)
                    stamped += await self._store.commit([put])
            except errors.Unavailable:
                raise
            except errors.SfmeshError as exc:  # this one only: the others go on
                log.warning(
                    "agent operation not purged: %s",
                    exc.message,
                    extra={"fields": {"operation": record.operation.uuid}},
                )
        orphans = 0
        for entry in index:
            if entry.value.decode() not in operations:
                orphans += await self._store.commit([Delete(entry.key, entry.mod_revision)])
        return Purged(removed, released, stamped, orphans)

    async def _remove(
        self, record: records_pb2.AgentOperationRecord, revision: int, now: float
    ) -> int | None:
        """Remove an operation read at `revision`, its index entry, and
        release its output blobs, in one transaction; how many blobs it
        released, or None when something changed since it was read."""
        uuid = record.operation.uuid
        changes: list[Operation] = [Delete(key(rules.OPERATION, uuid), revision)]
        if record.index_key:
            changes.append(Delete(key(rules.BY_INSTANCE, record.index_key)))
        blobs = await self._released_blobs(record.output_blobs, now)
        if not await self._store.commit([*changes, *blobs]):
            return None
        return len(blobs)

    async def _released_blobs(self, uuids: Iterable[str], now: float) -> list[Operation]:
        """The writes that release the output blobs `uuids`, each compared
        on the revision read; none for a blob gone or already let go of."""
        writes: list[Operation] = []
        for uuid in dict.fromkeys(uuids):
            item = await self._store.get(key("blob", uuid))
            if item is None:
                continue
            blob = records_pb2.BlobRecord.FromString(item.value)
            if rules.release_output(blob, now):
                writes.append(Put(item.key, blob.SerializeToString(), item.mod_revision))
        return writes

    async def run(self) -> None:
        """Sweep every `interval` seconds until cancelled (`sweep_every`)."""
        await sweep_every(self._settings.interval, self.sweep, "purged agent operations")
