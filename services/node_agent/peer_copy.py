"""Copying a blob from the nodes that hold it into this node's blob store,
over their `ReadBlob` streams (``peer_agents.py``); never a side channel.

One copy, start to end:

1. The blob's record must say `created`. A whole file already here (this
   node listed, the file of the record's size) is the answer; a file of
   that size not yet listed (a copy that landed just before a crash) is
   hashed and, when its sha512 matches, listed.
2. The sources are the blob's `locations` on live nodes other than this
   one, in random order (spreading readers over the holders).
3. Bytes go into the blob's exclusive partial file (``blob_store.py``),
   hashed while written, on a thread, one chunk at a time while the next
   arrives: memory holds two chunks or so whatever the blob's size.
4. A stream that breaks off is resumed from the bytes already written
   (`offset`), at the next source: at most `attempts` streams in all.
5. More bytes than the record's size, or a sha512 unlike the record's once
   the size is reached, throw the partial file away (event `blob failed
   size validation` / `blob failed checksum validation`), and that source
   is not asked again.
6. Only then is the file synced and renamed to the blob's name, and this
   node added to `locations` by compare-and-swap.

A partial file never passes for a blob (its name says partial) and a failed
copy removes it. Copies of one blob on this node share one task.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sfmesh.v1 import artifact_pb2, event_pb2

from services.common import errors
from services.common.events import EventSink
from services.node_agent.blob_locations import BlobLocations, NotCreated
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import BlobBusy, BlobStore, BlobWriter
from services.node_agent.file_digests import file_digest
from services.node_agent.metrics import BLOB_BYTES
from services.node_agent.peer_agents import PeerReadFailed

log = logging.getLogger("sfmesh.node_agent.peer_copy")


class CopyFailed(Exception):
    """The blob could not be copied to this node; the message says why."""


class Peers(Protocol):
    """The other node agents (``peer_agents.PeerAgents``)."""

    async def alive(self) -> frozenset[str]:
        """Names of the nodes alive now."""

    def read(self, node: str, uuid: str, offset: int) -> AsyncGenerator[bytes, None]:
        """Blob `uuid`'s bytes on `node` from `offset`. Raises PeerReadFailed."""


@dataclass(frozen=True)
class CopyPolicy:
    """How hard one copy tries."""

    attempts: int = 6
    """Streams opened in all, over every source, before giving up."""
    backoff: float = 0.5
    """Seconds before the second attempt; each later one waits once more."""


class _Invalid(Exception):
    """What a source sent is not the blob: the partial file is discarded."""

    def __init__(self, message: str, event: str, extra: dict[str, str]) -> None:
        super().__init__(message)
        self.event = event
        self.extra = extra


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem of `path` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


class PeerCopier:
    """Brings blobs to node `node` from the nodes that hold them."""

    def __init__(
        self,
        *,
        node: str,
        blobs: BlobStore,
        records: BlobRecords,
        locations: BlobLocations,
        peers: Peers,
        events: EventSink | None = None,
        policy: CopyPolicy = CopyPolicy(),
        free: Callable[[], int] | None = None,
    ) -> None:
        self._node = node
        self._blobs = blobs
        self._records = records
        self._locations = locations
        self._peers = peers
        self._events = events
        self._policy = policy
        self._free = free or (lambda: free_bytes(blobs.path("00").parent))
        self._running: dict[str, asyncio.Task[Path]] = {}

    def copying(self) -> frozenset[str]:
        """The blobs being copied to this node now."""
        return frozenset(self._running)

    async def ensure(self, uuid: str, *, reserve: int = 0) -> Path:
        """Blob `uuid` whole on this node, copied from a peer when not here;
        its path. `reserve`: bytes that must stay free after the copy.
        Raises CopyFailed."""
        task = self._running.get(uuid)
        if task is None:
            task = asyncio.create_task(self._ensure(uuid, reserve), name=f"copy-{uuid}")
            self._running[uuid] = task
            task.add_done_callback(lambda _: self._running.pop(uuid, None))
        return await asyncio.shield(task)

    async def _ensure(self, uuid: str, reserve: int) -> Path:
        try:
            blob = await self._created(uuid)
            if await self._already_here(uuid, blob):
                return self._blobs.path(uuid)
            free = await asyncio.to_thread(self._free)
            if free - blob.size < reserve:
                raise CopyFailed(
                    f"blob {uuid} ({blob.size} bytes) does not fit on node {self._node}: "
                    f"{free} bytes free, {reserve} kept free"
                )
            path = await self._copy(uuid, blob)
            try:
                await self._locations.add(uuid)
            except NotCreated as exc:  # its file goes with the deleted blob's
                raise CopyFailed(str(exc)) from exc
            return path
        except errors.SfmeshError as exc:  # etcd unreachable
            raise CopyFailed(f"copying blob {uuid}: {exc.message}") from exc
        except OSError as exc:  # the disk full or failing: the partial file is gone
            raise CopyFailed(f"copying blob {uuid} to node {self._node}: {exc}") from exc

    async def _created(self, uuid: str) -> artifact_pb2.Blob:
        stored = await self._records.blob(uuid)
        if stored is None:
            raise CopyFailed(f"blob {uuid} not found")
        blob = stored.record.blob
        if blob.state != artifact_pb2.BLOB_STATE_CREATED:
            state = artifact_pb2.BlobState.Name(blob.state).removeprefix("BLOB_STATE_").lower()
            raise CopyFailed(f"blob {uuid} is {state}")
        return blob

    async def _already_here(self, uuid: str, blob: artifact_pb2.Blob) -> bool:
        """Whether the whole blob is here (listed now if it was not)."""
        if not await asyncio.to_thread(self._blobs.holds, uuid, blob.size):
            return False
        if self._node in blob.locations:
            return True
        found = (await asyncio.to_thread(file_digest, self._blobs.path(uuid))).sha512
        if blob.HasField("sha512") and found != blob.sha512:
            await asyncio.to_thread(self._blobs.remove, uuid)
            return False
        await self._locations.add(uuid)
        return True

    async def _copy(self, uuid: str, blob: artifact_pb2.Blob) -> Path:
        """Copy the blob's bytes into place here (not yet listed)."""
        alive = await self._peers.alive()
        sources = [name for name in blob.locations if name != self._node and name in alive]
        random.shuffle(sources)
        if not sources:
            raise CopyFailed(f"no live node holds blob {uuid}")
        attempts = 0
        reasons: list[str] = []
        while sources and attempts < self._policy.attempts:
            try:
                with self._blobs.writer(uuid) as writer:
                    while sources and attempts < self._policy.attempts:
                        source = sources[attempts % len(sources)]
                        if attempts:
                            await asyncio.sleep(self._policy.backoff * attempts)
                        attempts += 1
                        try:
                            if await self._stream(source, uuid, blob, writer):
                                return await asyncio.to_thread(writer.commit)
                        except PeerReadFailed as exc:
                            reasons.append(str(exc))
                            log.warning("blob copy interrupted: %s", exc)
                            if exc.missing:
                                sources.remove(source)
                        except _Invalid as exc:
                            reasons.append(str(exc))
                            self._emit(uuid, exc.event, {**exc.extra, "source": source})
                            sources.remove(source)
                            break  # a fresh partial file for the next source
            except BlobBusy as exc:
                raise CopyFailed(f"blob {uuid} is being written here already") from exc
        raise CopyFailed(
            f"copying blob {uuid} failed after {attempts} attempts: " + "; ".join(reasons[-3:])
        )

    async def _stream(
        self, source: str, uuid: str, blob: artifact_pb2.Blob, writer: BlobWriter
    ) -> bool:
        """Append `source`'s bytes from where `writer` is; whether the blob
        is now whole and checked. Raises PeerReadFailed, _Invalid."""
        chunks = self._peers.read(source, uuid, writer.size)
        writing: asyncio.Future[None] | None = None  # one chunk written while the next comes
        received = writer.size
        try:
            async for chunk in chunks:
                received += len(chunk)
                BLOB_BYTES.inc(len(chunk))
                if received > blob.size:
                    raise _Invalid(
                        f"node {source} sent more than the {blob.size} bytes of blob {uuid}",
                        "blob failed size validation",
                        {"size": str(blob.size), "node": self._node},
                    )
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(asyncio.to_thread(writer.write, chunk))
        finally:
            if writing is not None:
                await writing  # `writer.size` is then what was written
            await chunks.aclose()
        if writer.size < blob.size:
            raise PeerReadFailed(f"node {source} ended blob {uuid} at byte {writer.size}")
        found = await asyncio.to_thread(writer.sha512)
        if blob.HasField("sha512") and found != blob.sha512:
            raise _Invalid(
                f"blob {uuid} from node {source} has sha512 {found[:16]}…, not {blob.sha512[:16]}…",
                "blob failed checksum validation",
                {"stored": blob.sha512, "computed": found, "node": self._node},
            )
        return True

    def _emit(self, uuid: str, message: str, extra: dict[str, str]) -> None:
        log.warning("%s", message, extra={"fields": {"blob": uuid, **extra}})
        if self._events is not None:
            self._events.emit("blob", uuid, event_pb2.EVENT_TYPE_STATUS, message, extra=extra)
