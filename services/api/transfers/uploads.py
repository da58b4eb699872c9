"""Uploads (reference §4, with §11 Q3, Q17, Q18): start one on a node, append
to it, cut it back. The record (`store.py`) is the api's; the bytes are the
node agent's, in a file named by the upload on the node chosen at start.

- Start: a `created` node at random (as `POST /artifacts` picks its fetch
  node); the record is owned by the caller's namespace.
- Append: the request's stream is relayed chunk by chunk to the node's
  `AppendToUpload` (all or nothing there), checked against the size the
  record holds and bounded by `max_size`; then the record takes the node's
  new size by compare-and-swap, and that size is the answer. Bodies are
  never parsed (Q17). A refused append is refused only after its whole
  request stream was read: gRPC's client reports an error of its own when a
  server ends a client stream early.
- Truncate: to at most the record's size (400 otherwise, Q18), on the node
  first, then in the record.

The file is the truth of the bytes, the record of what the owner was told.
The node moves first and the record follows, so a crash between the two
leaves them apart; the node then refuses the next append (FAILED_PRECONDITION,
the file's real size in its ErrorInfo metadata `size`). The record takes the
file's size and the append is a 409: the official client, on an error,
truncates to what it had confirmed and sends again, which always fits.
"""

from __future__ import annotations

import random
import time
import uuid as uuid_module
from collections.abc import AsyncGenerator, AsyncIterator

from sfmesh.v1 import records_pb2, transfer_service_pb2

from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents, SizeMismatch
from services.api.transfers import rules
from services.api.transfers.store import StoredUpload, UploadStore
from services.common import errors

UPLOAD = "upload"
"""The events' object type of uploads."""
NODE_RETRY_AFTER = 5
"""Seconds a start refused for want of a node is told to wait."""


async def drain(messages: AsyncIterator[object]) -> None:
    """Read what is left of a request stream, so a refusal can be answered."""
    async for _ in messages:
        pass


async def _chunks(
    first: transfer_service_pb2.AppendUploadRequest,
    rest: AsyncIterator[transfer_service_pb2.AppendUploadRequest],
) -> AsyncGenerator[bytes, None]:
    yield first.data.data
    async for message in rest:
        yield message.data.data


class Uploads:
    """Starting, appending to and truncating uploads."""

    def __init__(
        self,
        uploads: UploadStore,
        artifacts: ArtifactStore,
        agents: NodeAgents,
        events: Events,
        *,
        max_size: int,
        rng: random.Random | None = None,
    ) -> None:
        self._uploads = uploads
        self._artifacts = artifacts
        self._agents = agents
        self._events = events
        self._max_size = max_size
        self._rng = rng or random.SystemRandom()

    async def create(self, caller: str) -> transfer_service_pb2.Upload:
        """Start an empty upload of the caller's on a node that is up."""
        nodes = await self._agents.answering(await self._artifacts.nodes())
        if not nodes:
            raise errors.Unavailable(
                "no node is up to hold the upload; try again later",
                reason="NO_UPLOAD_NODE",
                retry_after=NODE_RETRY_AFTER,
            )
        record = rules.new_upload(
            str(uuid_module.uuid4()), caller, self._rng.choice(nodes), time.time()
        )
        if not await self._uploads.create(record):
            raise errors.Aborted("that upload uuid is taken; try again")
        self._events.audit(record.upload.uuid, "create request from REST API", kind=UPLOAD)
        return rules.upload_view(record)

    async def owned(self, upload_uuid: str, caller: str) -> StoredUpload:
        """The upload, when the caller may use it; 404 `upload not found`."""
        stored = await self._uploads.get(upload_uuid)
        rules.check_owner(stored.record if stored else None, caller)
        assert stored is not None
        return stored

    async def append(
        self, messages: AsyncIterator[transfer_service_pb2.AppendUploadRequest], caller: str
    ) -> int:
        """Relay an append's stream to the upload's node; the size after."""
        first = await anext(aiter(messages), None)
        if first is None:
            raise errors.InvalidArgument("an append names its upload in its first message")
        try:
            stored = await self.owned(first.upload_uuid, caller)
        except errors.SfmeshError:
            await drain(messages)
            raise
        upload = stored.record.upload
        chunks = _chunks(first, messages)
        try:
            size = await self._agents.append_to_upload(
                upload.node,
                upload.uuid,
                expected_size=upload.size,
                max_size=self._max_size,
                chunks=chunks,
            )
        except SizeMismatch as exc:
            await drain(messages)
            await self._reconcile(stored, exc.actual)
            raise errors.Conflict(
                f"upload {upload.uuid} holds {exc.actual} bytes, not {upload.size}: "
                "truncate it to what you sent and append again",
                reason="UPLOAD_SIZE_MISMATCH",
            ) from None
        except errors.SfmeshError:
            await drain(messages)
            raise
        finally:
            await chunks.aclose()
        await self._record_size(stored, size)
        return size

    async def truncate(self, upload_uuid: str, offset: int, caller: str) -> None:
        """Cut an upload of the caller's back to `offset` bytes."""
        stored = await self.owned(upload_uuid, caller)
        upload = stored.record.upload
        rules.check_truncate(upload.size, offset)
        self._events.audit(
            upload.uuid, "truncate request from REST API", {"offset": offset}, kind=UPLOAD
        )
        try:
            size = await self._agents.truncate_upload_file(upload.node, upload.uuid, offset)
        except SizeMismatch as exc:
            await self._reconcile(stored, exc.actual)
            raise errors.Conflict(
                f"upload {upload.uuid} holds {exc.actual} bytes", reason="UPLOAD_SIZE_MISMATCH"
            ) from None
        await self._record_size(stored, size)

    async def _record_size(self, stored: StoredUpload, size: int) -> None:
        now = time.time()

        def sized(record: records_pb2.UploadRecord) -> None:
            record.upload.size = size
            record.updated_at = now

        await self._uploads.update(stored, sized)

    async def _reconcile(self, stored: StoredUpload, actual: int) -> None:
        """The record takes the file's real size: the file holds the bytes."""
        await self._record_size(stored, actual)
