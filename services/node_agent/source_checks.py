"""Freshness checks of image artifacts' sources on this node (reference
§2.7 step 2; the rules are ``freshness.py``'s, the `GET` is
``ImageCache.refresh``): is the newest version still what its URL serves?

- A cache request checks before it is answered, every time (``now``).
- An instance create never waits for one (``later``): it boots the newest
  version present, and when the artifact's source was last read
  (`checked_at`) the check interval ago or more, a check runs in the
  background. It is claimed first by a compare-and-swap of `checked_at`,
  so a burst of creates on any number of nodes makes one check per
  interval. One check per artifact runs here at a time.

Unchanged: the newest version stays. Changed: the answer's body becomes a
new blob, recorded as any fetch (``disk_images.py``). No answer, or a failed
download: the cached version is used. Each with Shaken Fist's audit events.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from sfmesh.v1 import artifact_pb2, records_pb2

from services.common import errors
from services.node_agent.blob_records import BlobRecords
from services.node_agent.freshness import Recorded, Stale, check_due
from services.node_agent.images import CachedImage, CheckFailed, ImageCache, ImageError

log = logging.getLogger("sfmesh.node_agent.source_checks")

DEFAULT_CHECK_INTERVAL = 300.0
"""Seconds after an artifact's source was last read before an instance
create has it checked again (in the background)."""

RecordFetch = Callable[[str, CachedImage, bool], Awaitable[str]]
"""record(artifact uuid, image, answer_request): a download recorded as the
artifact's fetch, never for a deleted artifact (its file then removed); the
blob it now is. Raises ImageError."""
Audit = Callable[[str, str, Mapping[str, object]], None]
"""audit(artifact uuid, message, extra): an audit event on the artifact."""


class Checked(enum.Enum):
    """What a freshness check of an artifact's source came to."""

    NOT_CHECKED = enum.auto()
    """No version to compare with: the source is fetched as a first time."""
    FRESH = enum.auto()
    """Last-Modified and Content-Length as recorded: the newest version stays."""
    FETCHED = enum.auto()
    """Changed: downloaded and recorded (a new version, or the newest adopted)."""
    KEPT = enum.auto()
    """No answer to compare, or a failed download: the cached version is used."""


class SourceChecks:
    """Freshness checks of image artifacts' sources, run by this node."""

    def __init__(
        self,
        *,
        images: ImageCache,
        records: BlobRecords,
        record: RecordFetch,
        audit: Audit,
        interval: float = DEFAULT_CHECK_INTERVAL,
    ) -> None:
        self._images = images
        self._records = records
        self._record = record
        self._audit = audit
        self._interval = interval
        self._running: dict[str, asyncio.Task[None]] = {}

    def later(self, artifact: records_pb2.ArtifactRecord) -> None:
        """Check `artifact`'s source in the background when due (its last
        read the interval ago or more) and no check of it runs here."""
        uuid = artifact.artifact.uuid
        if uuid in self._running or not artifact.versions:
            return
        if artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED:
            return
        if not check_due(artifact.checked_at, time.time(), self._interval):
            return
        task = asyncio.create_task(self._in_background(uuid), name=f"image-check-{uuid}")
        self._running[uuid] = task
        task.add_done_callback(lambda done: self._forget(uuid, done))

    async def now(self, artifact: records_pb2.ArtifactRecord) -> Checked:
        """A cache request's check of `artifact`'s source (its request
        answered when FETCHED), when it has a version to compare."""
        if artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED:
            return Checked.NOT_CHECKED
        newest = await self._newest_created(artifact)
        if newest is None:
            return Checked.NOT_CHECKED
        running = self._running.get(artifact.artifact.uuid)
        if running is not None:  # a create's check of it first: one download at a time
            await asyncio.wait({running})  # whatever its outcome; this task's cancel stays its own
            stored = await self._records.artifact(artifact.artifact.uuid)
            newest = await self._newest_created(stored.record) if stored is not None else None
            if stored is None or newest is None:
                return Checked.NOT_CHECKED
            artifact = stored.record
        return await self._check(artifact, newest, answer_request=True, stamp=True)

    async def close(self) -> None:
        """Stop the checks running in the background."""
        running = list(self._running.values())
        for task in running:
            task.cancel()
        for task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _forget(self, uuid: str, task: asyncio.Task[None]) -> None:
        if self._running.get(uuid) is task:
            del self._running[uuid]

    async def _in_background(self, uuid: str) -> None:
        """Claim the check of artifact `uuid`'s source in etcd (none other
        starts within the interval), then check it."""
        try:
            claimed = await self._records.claim_check(uuid, time.time(), self._interval)
            newest = await self._newest_created(claimed) if claimed is not None else None
            if claimed is None or newest is None:
                return
            await self._check(claimed, newest, answer_request=False, stamp=False)
        except (ImageError, errors.SfmeshError) as exc:
            log.warning("checking the source of artifact %s: %s", uuid, exc)
        except Exception:
            log.exception("checking the source of artifact %s failed", uuid)

    async def _check(
        self,
        artifact: records_pb2.ArtifactRecord,
        newest: records_pb2.BlobRecord,
        *,
        answer_request: bool,
        stamp: bool,
    ) -> Checked:
        """Check `artifact`'s source against its `newest` blob; a changed
        one is fetched and recorded. `stamp` records when the source was
        read (a claimed check has already)."""
        uuid = artifact.artifact.uuid
        recorded = Recorded(newest.blob.modified, newest.blob.size)
        image: CachedImage | None = None
        try:
            image = await self._images.refresh(
                artifact.artifact.source_url, recorded, lambda reasons: self._stale(uuid, reasons)
            )
        except CheckFailed as exc:
            log.info("checking artifact %s: %s; using the cached version", uuid, exc)
            self._audit(uuid, "image fetch had HTTP error, not fetching image", {"error": str(exc)})
            outcome = Checked.KEPT
        except ImageError as exc:
            log.warning("updating artifact %s failed: %s; using the cached version", uuid, exc)
            self._audit(
                uuid, "updating image failed, using already cached version", {"message": str(exc)}
            )
            outcome = Checked.KEPT
        else:
            outcome = Checked.FRESH if image is None else Checked.FETCHED
        if image is not None:
            try:
                await self._record(uuid, image, answer_request)
            except ImageError as exc:  # deleted or gone meanwhile
                log.info("not recorded: %s", exc)
                return Checked.KEPT
        elif stamp:
            await self._records.record_check(uuid, time.time())
        return outcome

    def _stale(self, uuid: str, reasons: tuple[Stale, ...]) -> None:
        for reason in reasons:
            self._audit(uuid, reason.message, reason.extra)

    async def _newest_created(
        self, artifact: records_pb2.ArtifactRecord
    ) -> records_pb2.BlobRecord | None:
        """The newest version's blob record when it is `created`: what a
        check compares the source with; None otherwise."""
        if not artifact.versions:
            return None
        stored = await self._records.blob(artifact.versions[-1].blob_uuid)
        if stored is None or stored.record.blob.state != artifact_pb2.BLOB_STATE_CREATED:
            return None
        return stored.record
