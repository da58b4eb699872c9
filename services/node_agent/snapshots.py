"""Snapshot copies made on this node (reference §7.1): SnapshotDisk starts
one as a task and answers; the task has the copy made (``snapshot_copies.py``:
consistent, flattened or thin, checked, hashed and adopted into the blob
store under the reserved blob's uuid) and records the outcome in one
compare-and-swap (``snapshot_outcome.py``): a thin copy is recorded
`depends_on` its parent, which gains a reference. Any failure marks the
blob `error` (and the artifact, when this was its first snapshot:
``reservations.py``), with an instance event, and leaves no file behind: a
blob is never half made. The **NVRAM** of a UEFI instance (device `nvram`)
takes milliseconds and is made before SnapshotDisk answers (`run`),
outside the disks' turns.

One disk copy per instance runs at a time (libvirt runs one job per
domain); others wait their turn (a lock per instance ever snapshotted
here). A copy in flight when the node agent stops is lost: its blob, which
names this node as its maker, is marked `error` once this node no longer
makes it (``abandoned_blobs.py``, from ``blob_care.py``'s passes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sfmesh.v1 import artifact_pb2, event_pb2, records_pb2

from services.common import artifact_versions
from services.common.events import EventSink
from services.common.store import Operation, Put, Store, key
from services.node_agent import blob_chain, reservations, snapshot_outcome
from services.node_agent.blob_records import BlobRecords, Stored
from services.node_agent.blob_store import BlobBusy, BlobExists, BlobStore
from services.node_agent.disk_copy import CopyFailed
from services.node_agent.disks import DiskError
from services.node_agent.hypervisor import Hypervisor, HypervisorError
from services.node_agent.images import ImageError
from services.node_agent.snapshot_copies import NVRAM, Copier, Job
from services.node_agent.snapshot_outcome import Copy, ParentUnusable

__all__ = ["NVRAM", "Job", "Snapshots"]

log = logging.getLogger("sfmesh.node_agent.snapshots")

_FAILURES = (
    CopyFailed,
    HypervisorError,
    DiskError,
    ImageError,
    BlobBusy,
    BlobExists,
    OSError,
    ParentUnusable,
)


class Snapshots:
    """Runs snapshot copies as tasks and records their outcome."""

    def __init__(
        self,
        *,
        node: str,
        hypervisor: Hypervisor,
        blobs: BlobStore,
        records: BlobRecords,
        store: Store,
        events: EventSink,
        work_dir: Path,
    ) -> None:
        self._node = node
        self._hypervisor = hypervisor
        self._blobs = blobs
        self._records = records
        self._store = store
        self._events = events
        self._work_dir = work_dir
        self._copier = Copier(
            hypervisor=hypervisor, blobs=blobs, records=records, work_dir=work_dir
        )
        self._running: dict[str, asyncio.Task[None]] = {}
        """Tasks by blob uuid (the loop keeps only weak references)."""
        self._locks: dict[str, asyncio.Lock] = {}

    def sweep(self) -> list[Path]:
        """Remove copies a stopped agent left in the work folder (blocking);
        those removed. Call before any copy starts."""
        removed = []
        for leftover in [*self._work_dir.glob("*.qcow2"), *self._work_dir.glob("*.fd")]:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                removed.append(leftover)
        return removed

    def start(self, job: Job) -> None:
        """Copy in a task of its own; a job already running is not started again."""
        if job.blob_uuid in self._running:
            return
        task = asyncio.create_task(self._run(job), name=f"snapshot-{job.blob_uuid}")
        self._running[job.blob_uuid] = task
        task.add_done_callback(lambda _: self._running.pop(job.blob_uuid, None))

    async def run(self, job: Job) -> None:
        """Copy now and wait for the outcome to be recorded (NVRAM, whose
        copy takes milliseconds: reference §7.1 versions it at once)."""
        self.start(job)
        task = self._running.get(job.blob_uuid)
        if task is not None:
            await asyncio.shield(task)

    def making(self) -> frozenset[str]:
        """The blobs whose copies run or wait their turn here now."""
        return frozenset(self._running)

    async def wait(self) -> None:
        """Wait for every copy running now (tests)."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self) -> None:
        """Cancel every copy in flight."""
        for task in list(self._running.values()):
            task.cancel()
        await self.wait()

    async def _run(self, job: Job) -> None:
        if job.device == NVRAM:  # no block job: needs no turn
            await self._make(job)
            return
        async with self._locks.setdefault(job.instance_uuid, asyncio.Lock()):
            await self._make(job)

    async def _make(self, job: Job) -> None:
        started = time.monotonic()
        try:
            if not await self._artifact_live(job.artifact_uuid):
                await self._discard(job, "the snapshot artifact was deleted")
                return
            made = await self._copier.copy(job)
            try:
                applied = await self._record_made(job, made)
            except ParentUnusable:
                await asyncio.to_thread(self._blobs.remove, job.blob_uuid)
                raise
        except _FAILURES as exc:
            await self._record_failed(job, str(exc))
            return
        except Exception as exc:  # never a blob left initial for a bug
            log.exception("snapshot %s failed", job.blob_uuid)
            await self._record_failed(job, f"internal error: {exc}")
            return
        if applied is None or not applied.added:
            await asyncio.to_thread(self._blobs.remove, job.blob_uuid)
            self._emit(job, "snapshot discarded", {"reason": "the artifact or blob went"})
            return
        extra: dict[str, Any] = {"size": made.size, "index": applied.index}
        if made.depends_on:
            extra["depends_on"] = made.depends_on
        self._emit(job, "snapshot complete", extra, duration=time.monotonic() - started)
        self._events.emit(
            "artifact",
            job.artifact_uuid,
            event_pb2.EVENT_TYPE_MUTATE,
            "added index to artifact",
            extra={"index": applied.index, "blob_uuid": job.blob_uuid},
        )

    async def _artifact_live(self, uuid: str) -> bool:
        stored = await self._records.artifact(uuid)
        return stored is not None and stored.record.artifact.state != _DELETED

    async def _record_made(self, job: Job, made: Copy) -> snapshot_outcome.Applied | None:
        """The one transaction recording the copy; None when the reserved
        blob is gone or already has an outcome (its file is then removed).
        Raises ParentUnusable."""
        while True:
            blob = await self._records.blob(job.blob_uuid)
            if blob is None or blob.record.blob.state != _INITIAL:
                return None
            artifact = await self._records.artifact(job.artifact_uuid)
            versions = [v.blob_uuid for v in artifact.record.versions] if artifact else []
            wanted = {u for u in [*versions, made.depends_on] if u and u != job.blob_uuid}
            read = await self._chains(wanted)
            others = {u: _copy(s.record) for u, s in read.items() if s is not None}
            new_artifact = _copy(artifact.record) if artifact else None
            new_blob = _copy(blob.record)
            applied = snapshot_outcome.apply_made(
                new_artifact, new_blob, others, made, self._node, time.time()
            )
            operations: list[Operation] = [_put("blob", new_blob, blob.mod_revision)]
            if artifact is not None and new_artifact is not None and applied.added:
                operations.append(_put("artifact", new_artifact, artifact.mod_revision))
                for uuid, record in others.items():
                    before = read[uuid]
                    if before is not None and before.record != record:
                        operations.append(_put("blob", record, before.mod_revision))
            if await self._store.commit(operations):
                return applied

    async def _chains(self, uuids: set[str]) -> dict[str, Stored[records_pb2.BlobRecord] | None]:
        """The records of `uuids` and of their parents up each thin chain
        (a prune may cascade up them); None for those gone."""
        read: dict[str, Stored[records_pb2.BlobRecord] | None] = {}
        wanted = set(uuids)
        for _ in range(blob_chain.MAX_DEPTH + 1):
            if not wanted:
                break
            read.update(await self._records.blobs(wanted))
            found = {u: s.record for u, s in read.items() if s is not None}
            wanted = artifact_versions.ancestors_to_read(found) - set(read)
        return read

    async def _record_failed(self, job: Job, message: str) -> None:
        """The blob `error`, and the artifact when this was its first
        snapshot (``reservations.py``); etcd trouble is logged."""
        try:
            failed = await reservations.fail(
                self._store, job.blob_uuid, reservations.because(message)
            )
        except Exception:
            log.exception("cannot record the failure of snapshot blob %s", job.blob_uuid)
            failed = None
        log.warning("snapshot %s of %s failed: %s", job.device, job.instance_uuid, message)
        self._emit(job, "snapshot failed", {"error": message})
        if failed is not None:
            reservations.artifact_failed_event(self._events, failed)

    async def _discard(self, job: Job, reason: str) -> None:
        def deleted(record: records_pb2.BlobRecord) -> bool:
            if record.blob.state != _INITIAL:
                return False
            record.blob.state = _DELETED_BLOB
            record.deleted_at = time.time()
            return True

        await self._change_blob(job.blob_uuid, deleted)
        self._emit(job, "snapshot discarded", {"reason": reason})

    async def _change_blob(
        self, uuid: str, change: Callable[[records_pb2.BlobRecord], bool]
    ) -> None:
        """Apply `change` to a blob record with compare-and-swap, until it
        lands or `change` says there is nothing to do; etcd trouble is logged."""
        try:
            while True:
                stored = await self._records.blob(uuid)
                if stored is None:
                    return
                record = _copy(stored.record)
                if not change(record):
                    return
                if await self._store.commit([_put("blob", record, stored.mod_revision)]):
                    return
        except Exception:
            log.exception("cannot record the outcome of snapshot blob %s", uuid)

    def _emit(
        self, job: Job, message: str, extra: dict[str, Any], *, duration: float | None = None
    ) -> None:
        self._events.emit(
            "instance",
            job.instance_uuid,
            event_pb2.EVENT_TYPE_AUDIT,
            message,
            extra={
                "device": job.device,
                "artifact_uuid": job.artifact_uuid,
                "blob_uuid": job.blob_uuid,
                "request_id": job.request_id,
                **extra,
            },
            duration=duration,
        )


_INITIAL = artifact_pb2.BLOB_STATE_INITIAL
_DELETED = artifact_pb2.ARTIFACT_STATE_DELETED
_DELETED_BLOB = artifact_pb2.BLOB_STATE_DELETED
R = TypeVar("R", records_pb2.ArtifactRecord, records_pb2.BlobRecord)


def _copy(record: R) -> R:
    fresh = type(record)()
    fresh.CopyFrom(record)
    return fresh


def _put(
    kind: str, record: records_pb2.ArtifactRecord | records_pb2.BlobRecord, revision: int
) -> Put:
    if isinstance(record, records_pb2.ArtifactRecord):
        uuid = record.artifact.uuid
    else:
        uuid = record.blob.uuid
    return Put(key(kind, uuid), record.SerializeToString(), revision)
