"""Where each disk's base image comes from on this node, as the instance
record's `disk_sources` say (written by the api at create time):

- a blob: used when this node holds it whole (it is among the blob's
  `locations` and the file has its size); otherwise copied here from a node
  that holds it (``peer_copy.py``), and the instance fails when none can.
  A thin blob (a thin snapshot, `depends_on` its parent) needs its parent
  here too, and the parent's parent: the chain is ensured from the top
  down, each layer checked to name exactly its parent (``blob_chain.py``),
  reference §9.6.
- an image artifact: its newest version's blob when this node holds it, or
  copied from a node that does (an image URL is fetched once per mesh, not
  once per node); otherwise its `source_url` is downloaded, and the download recorded
  (``fetch_outcome.py``): the newest blob adopted when the content is the
  same, else a new blob and version. A failed download marks an `initial`
  or `error` artifact `error`. An instance never waits for a freshness
  check: it boots the newest version present, and when the source was last
  read `check_interval` seconds ago or more, a check runs in the background
  (claimed in etcd, so one per interval across the mesh); a changed source
  becomes a new version for the creates after it.
- no source (records written before disk sources existed): the base URL is
  fetched through the image cache's URL index, as before; blank disks need
  nothing.

Cache requests (`fetch_node` on an artifact, ``cache_requests.py``) use the
same fetch, and check the source of an artifact with a version every time,
as Shaken Fist does (``source_checks.py``). One artifact is fetched by one
task at a time on this node, so instances of one artifact share a download
and the next finds it done; a check does not hold that up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sfmesh.v1 import artifact_pb2, event_pb2, instance_pb2, records_pb2

from services.common import errors
from services.common.events import EventSink
from services.node_agent import blob_chain
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import BlobStore
from services.node_agent.fetch_outcome import BlobUnusable, Fetched
from services.node_agent.images import CachedImage, ImageCache, ImageError
from services.node_agent.peer_copy import CopyFailed
from services.node_agent.source_checks import DEFAULT_CHECK_INTERVAL, Checked, SourceChecks

log = logging.getLogger("sfmesh.node_agent.disk_images")

Waiting = Callable[[str], AbstractContextManager[None]]
"""waiting(url): a block during which an instance waits for `url`'s download."""


@dataclass(frozen=True)
class DiskImage:
    """A disk's base image, on this node's disk."""

    path: Path
    fmt: str
    """As qemu names it: "qcow2" or "raw"."""
    blob_uuid: str | None
    """The blob record it is; None for an image fetched without one."""


class BlobCopier(Protocol):
    """Brings a blob here from the nodes holding it (``peer_copy.PeerCopier``)."""

    async def ensure(self, uuid: str, *, reserve: int = 0) -> Path:
        """Blob `uuid` whole on this node; its path. Raises CopyFailed."""


def _no_wait(url: str) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


def has_base(spec: instance_pb2.DiskSpec) -> bool:
    """Whether a requested disk names a base image. Pure."""
    return bool(spec.base) and spec.base != "none"


def qemu_format(fmt: str) -> str:
    """A blob's format as qemu reads it: ISO images are raw. Pure."""
    return "qcow2" if fmt == "qcow2" else "raw"


def _state(blob: records_pb2.BlobRecord) -> str:
    return artifact_pb2.BlobState.Name(blob.blob.state).removeprefix("BLOB_STATE_").lower()


class DiskImages:
    """The base images of instances' disks on node `node`."""

    def __init__(
        self,
        *,
        node: str,
        images: ImageCache,
        blobs: BlobStore,
        records: BlobRecords,
        events: EventSink | None = None,
        copier: BlobCopier | None = None,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
    ) -> None:
        self._node = node
        self._copier = copier
        self._events = events
        self._images = images
        self._blobs = blobs
        self._records = records
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._checks = SourceChecks(
            images=images,
            records=records,
            record=lambda uuid, image, answer_request: self._record(
                uuid, image, answer_request=answer_request, for_instance=False
            ),
            audit=self._audit,
            interval=check_interval,
        )

    async def for_instance(
        self, record: records_pb2.InstanceRecord, waiting: Waiting = _no_wait
    ) -> list[DiskImage | None]:
        """Each disk's base, in `disk_spec` order (None for blank disks).
        Raises ImageError."""
        sources = list(record.disk_sources)
        return list(
            await asyncio.gather(
                *(
                    self.for_disk(spec, sources[index] if index < len(sources) else None, waiting)
                    for index, spec in enumerate(record.instance.disk_spec)
                )
            )
        )

    async def for_disk(
        self,
        spec: instance_pb2.DiskSpec,
        source: records_pb2.DiskSource | None,
        waiting: Waiting = _no_wait,
    ) -> DiskImage | None:
        """One disk's base; None for a blank disk. Raises ImageError."""
        if source is not None and source.blob_uuid:
            return await self.from_blob(source.blob_uuid)
        if source is not None and source.artifact_uuid:
            return await self.from_artifact(source.artifact_uuid, waiting)
        if not has_base(spec):
            return None
        with waiting(self._images.resolve(spec.base)):
            image = await self._images.fetch(spec.base)
        return DiskImage(image.path, image.fmt, None)

    async def from_blob(self, uuid: str, *, depth: int = 0) -> DiskImage:
        """Blob `uuid`, copied here first when not whole on this node, and
        so its parents when it is thin. Raises ImageError."""
        stored = await self._records.blob(uuid)
        if stored is None:
            raise ImageError(f"blob {uuid} not found")
        blob = stored.record.blob
        if blob.state != artifact_pb2.BLOB_STATE_CREATED:
            raise ImageError(f"blob {uuid} is {_state(stored.record)}")
        parent = await self._parent(blob, depth)
        if self._node not in blob.locations or not self._blobs.holds(uuid, blob.size):
            if self._copier is None:
                raise ImageError(f"blob {uuid} is not on node {self._node}")
            try:
                await self._copier.ensure(uuid)
            except CopyFailed as exc:
                raise ImageError(str(exc)) from exc
        path = self._blobs.path(uuid)
        fmt = qemu_format(blob.format)
        if fmt == "qcow2":  # not necessarily fetched here: checked as a download is
            await asyncio.to_thread(
                blob_chain.check_layer,
                f"fetching blob {uuid}",
                path,
                parent.blob_uuid if parent else None,
                parent.fmt if parent else "",
            )
        elif parent is not None:
            raise ImageError(f"blob {uuid}: a thin blob must be qcow2, not {blob.format}")
        return DiskImage(path, fmt, uuid)

    async def _parent(self, blob: artifact_pb2.Blob, depth: int) -> DiskImage | None:
        """The parent of a thin blob, here and whole (with its own parents);
        None for a self-contained blob."""
        if not blob.HasField("depends_on"):
            return None
        if depth >= blob_chain.MAX_DEPTH:
            raise ImageError(f"blob {blob.uuid}: its chain is deeper than {blob_chain.MAX_DEPTH}")
        return await self.from_blob(blob.depends_on, depth=depth + 1)

    async def from_artifact(self, uuid: str, waiting: Waiting = _no_wait) -> DiskImage:
        """The newest blob of image artifact `uuid` on this node, fetched
        when not here. Raises ImageError."""
        async with self._lock(uuid):
            stored = await self._records.artifact(uuid)
            if stored is None:
                raise ImageError(f"artifact {uuid} not found")
            local = await self._local_newest(stored.record) or await self._copied_newest(
                stored.record
            )
            if local is not None:
                self._checks.later(stored.record)
                return local
            source = stored.record.artifact.source_url
            with waiting(self._url(source)):
                image = await self._download(uuid, source, answer_request=False)
            blob_uuid = await self._record(uuid, image, answer_request=False)
            return DiskImage(self._blobs.path(blob_uuid), image.fmt, blob_uuid)

    async def answer_cache_request(self, uuid: str) -> None:
        """Answer artifact `uuid`'s request to this node: with a version,
        check its source first and fetch it again when changed; without
        one, or when its newest blob cannot be had here, fetch it. Record
        the outcome and clear the request. A request seen again (after a
        restart) is checked or fetched again. Raises ImageError when the
        fetch failed (recorded already)."""
        stored = await self._records.artifact(uuid)
        if stored is None or stored.record.fetch_node != self._node:
            return
        checked = await self._checks.now(stored.record)
        if checked is Checked.FETCHED:
            return
        async with self._lock(uuid):
            stored = await self._records.artifact(uuid)
            if stored is None or stored.record.fetch_node != self._node:
                return
            deleted = stored.record.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED
            here = await self._local_newest(stored.record) or await self._copied_newest(
                stored.record
            )
            if deleted or here is not None or checked is Checked.KEPT:
                await self._records.answer_request(uuid, self._node)
                if here is not None and checked is not Checked.KEPT:
                    url = self._url(stored.record.artifact.source_url)
                    extra = {"blob_uuid": here.blob_uuid or "", "url": url}
                    self._emit(uuid, "artifact fetch complete", extra)
                return
            source = stored.record.artifact.source_url
            image = await self._download(uuid, source, answer_request=True)
            await self._record(uuid, image, answer_request=True)

    async def close(self) -> None:
        """Stop the freshness checks running in the background."""
        await self._checks.close()

    async def _local_newest(self, artifact: records_pb2.ArtifactRecord) -> DiskImage | None:
        """The newest version's blob when this node holds it whole; None
        otherwise, and for a deleted artifact (whose blobs may be going)."""
        if artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED or not artifact.versions:
            return None
        uuid = artifact.versions[-1].blob_uuid
        stored = await self._records.blob(uuid)
        if stored is None:
            return None
        blob = stored.record.blob
        here = self._node in blob.locations and self._blobs.holds(uuid, blob.size)
        if blob.state != artifact_pb2.BLOB_STATE_CREATED or not here:
            return None
        if blob.HasField("depends_on"):  # a thin snapshot made a version: its chain too
            return await self.from_blob(uuid)
        return DiskImage(self._blobs.path(uuid), qemu_format(blob.format), uuid)

    async def _copied_newest(self, artifact: records_pb2.ArtifactRecord) -> DiskImage | None:
        """The newest version's blob copied from a node holding it; None
        when it cannot be (no copier, no live holder, a failed copy), and
        for a deleted artifact."""
        if self._copier is None or not artifact.versions:
            return None
        if artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED:
            return None
        uuid = artifact.versions[-1].blob_uuid
        try:
            path = await self._copier.ensure(uuid)
        except CopyFailed as exc:
            log.info("not copied from a peer, fetching instead: %s", exc)
            return None
        stored = await self._records.blob(uuid)
        if stored is not None and stored.record.blob.HasField("depends_on"):
            try:
                return await self.from_blob(uuid)  # its chain too
            except ImageError as exc:
                log.info("not copied from a peer, fetching instead: %s", exc)
                return None
        fmt = stored.record.blob.format if stored is not None else "raw"
        return DiskImage(path, qemu_format(fmt), uuid)

    def _url(self, source: str) -> str:
        """The URL of `source`, or `source` itself when it is none (its
        download then fails, and records why)."""
        try:
            return self._images.resolve(source)
        except ImageError:
            return source

    async def _download(self, uuid: str, source: str, *, answer_request: bool) -> CachedImage:
        try:
            return await self._images.download(source)
        except ImageError as exc:
            log.warning("fetching artifact %s failed: %s", uuid, exc)
            await self._records.record_failure(uuid, str(exc), answer_request=answer_request)
            self._emit(uuid, "artifact fetch failed", {"error": str(exc)})
            raise

    async def _record(
        self, uuid: str, image: CachedImage, *, answer_request: bool, for_instance: bool = True
    ) -> str:
        """Record `image` as artifact `uuid`'s fetch; the blob it now is.
        Only a fetch `for_instance` is recorded for a deleted artifact (as
        a blob the instance will hold); a check's is dropped, its file
        removed."""
        fetched = Fetched(
            blob_uuid=image.blob_uuid,
            sha512=image.sha512,
            size=image.size,
            fmt=image.fmt,
            modified=image.modified,
            fetched_at=image.fetched_at,
        )

        async def place(target: str) -> None:
            if target != image.blob_uuid and not self._blobs.holds(target, image.size):
                await asyncio.to_thread(self._blobs.link, image.blob_uuid, target)

        try:
            target = await self._records.record_fetch(
                uuid,
                fetched,
                self._node,
                place=place,
                answer_request=answer_request,
                deleted_ok=for_instance,
            )
        except (errors.NotFound, BlobUnusable) as exc:
            if not for_instance:
                await asyncio.to_thread(self._blobs.remove, image.blob_uuid)
            raise ImageError(f"recording the fetch of artifact {uuid}: {exc}") from exc
        if target != image.blob_uuid and await self._records.blob(image.blob_uuid) is None:
            await asyncio.to_thread(self._blobs.remove, image.blob_uuid)  # adopted: one copy
        self._emit(uuid, "artifact fetch complete", {"blob_uuid": target, "url": image.url})
        return target

    def _emit(
        self,
        uuid: str,
        message: str,
        extra: Mapping[str, object],
        event_type: int = event_pb2.EVENT_TYPE_STATUS,
    ) -> None:
        if self._events is not None:
            extra = {**extra, "node": self._node}
            self._events.emit("artifact", uuid, event_type, message, extra=extra)

    def _audit(self, uuid: str, message: str, extra: Mapping[str, object]) -> None:
        self._emit(uuid, message, extra, event_pb2.EVENT_TYPE_AUDIT)

    @contextlib.asynccontextmanager
    async def _lock(self, uuid: str) -> AsyncIterator[None]:
        """One task at a time per artifact; the lock is dropped when unused."""
        lock, users = self._locks.get(uuid, (asyncio.Lock(), 0))
        self._locks[uuid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[uuid]
            if users == 1:
                del self._locks[uuid]
            else:
                self._locks[uuid] = (lock, users - 1)
