"""The node agent's care of blobs across nodes, level-based: every
`interval` seconds it reads every blob record and node record and its own
blob folder, then

- removes its copy of each blob ``blob_rules.fault`` condemns (missing or
  wrong-sized while listed: at once; deleted or unknown: after the grace;
  files of the image cache's URL index, which have no record, are kept),
  dropping this node from `locations` first, so no reader is sent here;
- pulls, through ``peer_copy.py``, the blobs ``blob_rules.pulls`` gives it,
  at most `concurrent_pulls` at a time and only while the copy leaves
  `reserve` bytes free;
- marks `error` the blobs left `initial` by a maker that will never make
  them (``abandoned_blobs.py``);

and, beside that, re-reads one local blob at a time whose sha512 was not
checked here for `verify_interval` seconds, treating a mismatch like a
wrong size (event `blob failed checksum validation`). Replication then
restores the count elsewhere.

Reading every blob record each pass is fine for thousands of blobs (paged
reads); a watch would spare that at larger scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sfmesh.v1 import artifact_pb2, event_pb2, records_pb2

from services.common import errors
from services.common.events import EventSink
from services.common.store import Store, key, kind_prefix
from services.node_agent import blob_rules, naming
from services.node_agent.abandoned_blobs import AbandonedBlobs
from services.node_agent.blob_locations import BlobLocations
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.file_digests import file_digest
from services.node_agent.peer_copy import CopyFailed, PeerCopier, Peers

log = logging.getLogger("sfmesh.node_agent.blob_care")


@dataclass(frozen=True)
class CareSettings:
    """How a node agent looks after blobs."""

    factor: int = 2
    """Whole copies each created blob should have on live nodes."""
    reserve: int = 20 * 2**30
    """Bytes a replication copy must leave free on the blob folder's disk."""
    delete_grace: float = 3600.0
    """Seconds the file of a deleted (or unknown) blob is kept."""
    verify_interval: float = 86400.0
    """Seconds between two sha512 checks of one local blob; 0: never."""
    interval: float = 5.0
    """Seconds between two passes."""
    escalate: float = 60.0
    """Seconds short of copies after which one more node joins the pull."""
    concurrent_pulls: int = 2
    """Replication copies at once on this node."""
    verify_pause: float = 5.0
    """Seconds between two blobs' sha512 checks."""
    initial_grace: float = 300.0
    """Seconds an `initial` blob is left to its maker after its reservation
    (the request to make it may be on its way), and a maker may go without
    reporting, before the blob is taken for abandoned."""


@dataclass(frozen=True)
class LocalFile:
    """A blob file on this node."""

    size: int
    changed: float
    """Latest of its mtime and ctime (a rename counts)."""


def local_files(root: Path) -> dict[str, LocalFile]:
    """Every whole blob file under `root`, by uuid (blocking)."""
    found = {}
    for path in root.glob("*/*"):
        if not naming.is_uuid(path.name):
            continue  # partial files, staged links
        with contextlib.suppress(FileNotFoundError):
            stat = path.stat()
            found[path.name] = LocalFile(stat.st_size, max(stat.st_mtime, stat.st_ctime))
    return found


class BlobCare:
    """Replication, integrity and cleaning of node `node`'s blobs."""

    def __init__(
        self,
        *,
        node: str,
        store: Store,
        blobs: LocalBlobStore,
        copier: PeerCopier,
        locations: BlobLocations,
        peers: Peers,
        events: EventSink | None = None,
        settings: CareSettings = CareSettings(),
        clock: Callable[[], float] = time.time,
        kept: Callable[[], frozenset[str]] = frozenset,
        making: Callable[[], frozenset[str]] = frozenset,
    ) -> None:
        self._node = node
        self._kept = kept
        self._abandoned = AbandonedBlobs(
            node=node,
            store=store,
            making=making,
            grace=settings.initial_grace,
            clock=clock,
            events=events,
        )
        self._store = store
        self._blobs = blobs
        self._copier = copier
        self._locations = locations
        self._peers = peers
        self._events = events
        self._settings = settings
        self._clock = clock
        self._short_since: dict[str, float] = {}
        self._pulls: dict[str, asyncio.Task[None]] = {}
        self._verified: dict[str, float] = {}

    async def run(self) -> None:
        """Look after blobs until cancelled."""
        verifying = asyncio.create_task(self._verify_forever(), name="blob-verify")
        try:
            while True:
                try:
                    await self.tick()
                except errors.SfmeshError as exc:  # etcd unreachable
                    log.warning("blob care pass failed: %s", exc.message)
                await asyncio.sleep(self._settings.interval)
        finally:
            verifying.cancel()
            for task in [verifying, *self._pulls.values()]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def tick(self) -> None:
        """One pass: remove condemned copies, start due pulls, mark
        abandoned blobs `error`."""
        snapshot = await self._store.snapshot(kind_prefix("blob"))
        records = {}
        for item in snapshot.items:
            record = records_pb2.BlobRecord.FromString(item.value)
            records[record.blob.uuid] = record
        alive = await self._peers.alive()
        files = await asyncio.to_thread(local_files, self._blobs.root)
        await self._remove_faulty(records, files)
        self._start_pulls(records, alive)
        await self._abandoned.sweep(records.values(), alive)

    async def pulls_done(self) -> None:
        """Wait for the pulls running now (for tests and shutdown)."""
        await asyncio.gather(*self._pulls.values(), return_exceptions=True)

    async def _remove_faulty(
        self, records: dict[str, records_pb2.BlobRecord], files: dict[str, LocalFile]
    ) -> None:
        listed = {uuid for uuid, r in records.items() if self._node in r.blob.locations}
        kept = await asyncio.to_thread(self._kept)
        now = self._clock()
        busy = self._copier.copying()
        for uuid in sorted((set(files) | listed) - busy):
            if uuid in kept and uuid not in records:
                continue  # the URL index's: no record holds it
            found = files.get(uuid)
            reason = blob_rules.fault(
                records.get(uuid),
                self._node,
                found.size if found else None,
                found.changed if found else 0.0,
                now,
                self._settings.delete_grace,
            )
            if reason is not None:
                if found is not None and reason.startswith("its file has"):
                    self._emit(uuid, "blob failed size validation", {"reason": reason})
                await self._remove(uuid, reason)

    async def _remove(self, uuid: str, reason: str) -> None:
        log.info("removing a local blob copy: %s", reason, extra={"fields": {"blob": uuid}})
        await self._locations.drop(uuid)
        await asyncio.to_thread(self._blobs.remove, uuid)
        self._verified.pop(uuid, None)

    def _start_pulls(
        self, records: dict[str, records_pb2.BlobRecord], alive: frozenset[str]
    ) -> None:
        now = self._clock()
        factor = self._settings.factor
        for uuid, record in sorted(records.items()):
            blob = record.blob
            short = (
                blob.state == artifact_pb2.BLOB_STATE_CREATED
                and len(blob_rules.live_copies(blob, alive)) < factor
            )
            if not short:
                self._short_since.pop(uuid, None)
                continue
            since = self._short_since.setdefault(uuid, now)
            due = blob_rules.pulls(
                blob,
                self._node,
                alive,
                factor,
                short_for=now - since,
                escalate=self._settings.escalate,
            )
            if not due or uuid in self._pulls:
                continue
            if len(self._pulls) < self._settings.concurrent_pulls:
                task = asyncio.create_task(self._pull(uuid), name=f"replicate-{uuid}")
                self._pulls[uuid] = task
                task.add_done_callback(functools.partial(self._pulled, uuid))
        for gone in set(self._short_since) - set(records):
            del self._short_since[gone]

    def _pulled(self, uuid: str, _: asyncio.Task[None]) -> None:
        self._pulls.pop(uuid, None)

    async def _pull(self, uuid: str) -> None:
        try:
            await self._copier.ensure(uuid, reserve=self._settings.reserve)
        except CopyFailed as exc:
            log.warning("replication copy failed: %s", exc, extra={"fields": {"blob": uuid}})
        else:
            log.info("replicated a blob here", extra={"fields": {"blob": uuid}})
            self._verified[uuid] = self._clock()  # checked while copied

    async def _verify_forever(self) -> None:
        if self._settings.verify_interval <= 0:
            return
        while True:
            try:
                checked = await self.verify_one()
            except errors.SfmeshError as exc:
                log.warning("blob verification failed: %s", exc.message)
                checked = False
            await asyncio.sleep(self._settings.verify_pause if checked else self._settings.interval)

    async def verify_one(self) -> bool:
        """Check the sha512 of the local listed blob least recently checked,
        when one is due; whether one was checked."""
        files = await asyncio.to_thread(local_files, self._blobs.root)
        now = self._clock()
        due = [
            uuid
            for uuid in files
            if now - self._verified.get(uuid, 0.0) >= self._settings.verify_interval
            and uuid not in self._copier.copying()
        ]
        if not due:
            return False
        uuid = min(due, key=lambda each: self._verified.get(each, 0.0))
        self._verified[uuid] = now
        item = await self._store.get(key("blob", uuid))
        if item is None:
            return True
        blob = records_pb2.BlobRecord.FromString(item.value).blob
        if self._node not in blob.locations or not blob.HasField("sha512"):
            return True
        try:
            found = (await asyncio.to_thread(file_digest, self._blobs.path(uuid))).sha512
        except FileNotFoundError:
            return True  # the next pass drops it
        if found != blob.sha512:
            extra = {"stored": blob.sha512, "computed": found, "node": self._node}
            self._emit(uuid, "blob failed checksum validation", extra)
            await self._remove(uuid, "its sha512 does not match its record's")
        return True

    def _emit(self, uuid: str, message: str, extra: dict[str, str]) -> None:
        log.warning("%s", message, extra={"fields": {"blob": uuid, **extra}})
        if self._events is not None:
            extra = {**extra, "node": self._node}
            self._events.emit("blob", uuid, event_pb2.EVENT_TYPE_STATUS, message, extra=extra)
