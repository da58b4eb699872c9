"""`GET /blobs/{uuid}/data` (reference §6.3, with §11 Q9): a blob's bytes,
relayed from a node agent that holds it whole, as one raw body.

The blob must be one the caller reaches (the artifacts package's rule; 404
`blob not found`) and `created` (409). Which bytes, and 200 or 206, is
`ranges.py`'s. The holders are the blob's locations whose node is up, in
random order; a holder that fails, before or during the read, hands over
to the next from the byte it stopped at, so a body is cut short only when
no holder is left. A blob with no location at all is 404 `blob missing`;
one whose holders are all down is 503.

The answer's head goes out as initial metadata before the first chunk:
`accept-ranges: bytes`, and for a Range `x-http-code: 206` and
`content-range` (the gateway turns them into the status and headers). A
failure before the first chunk is an ordinary HTTP error.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import grpc
from google.api import httpbody_pb2
from sfmesh.v1 import transfer_service_pb2

from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ArtifactStore
from services.api.clients.node_agents import NodeAgents
from services.api.transfers import ranges, rules
from services.common import errors

CONTENT_TYPE = "application/octet-stream"
NODE_RETRY_AFTER = 5
"""Seconds a read refused for want of a holder is told to wait."""


def head_of(span: ranges.Span) -> tuple[tuple[str, str], ...]:
    """The initial metadata that sets the answer's status and headers. Pure."""
    head: tuple[tuple[str, str], ...] = (("accept-ranges", "bytes"),)
    if span.partial:
        head += (("x-http-code", "206"), ("content-range", span.content_range))
    return head


class BlobData:
    """Blob reads through node agents."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        lookup: ArtifactLookup,
        agents: NodeAgents,
        rng: random.Random | None = None,
    ) -> None:
        self._artifacts = artifacts
        self._lookup = lookup
        self._agents = agents
        self._rng = rng or random.SystemRandom()

    async def read(
        self,
        request: transfer_service_pb2.GetBlobDataRequest,
        caller: str,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        """The bytes the request asks for, chunk by chunk."""
        blob = (await self._lookup.blob(request.uuid, caller)).record.blob
        rules.check_blob_created(blob)
        span = ranges.span_of(
            blob.size,
            request.offset if request.HasField("offset") else None,
            request.limit if request.HasField("limit") else None,
            request.range,
        )
        if not blob.locations:
            raise errors.NotFound("blob missing", reason="BLOB_MISSING")
        holders = await self._holders(list(blob.locations))
        if span.length and not holders:
            raise errors.Unavailable(
                f"no node holding blob {blob.uuid} is up; try again later",
                reason="NO_BLOB_HOLDER",
                retry_after=NODE_RETRY_AFTER,
            )
        await context.send_initial_metadata(head_of(span))
        sent = 0
        failure: errors.SfmeshError | None = None
        for node in holders:
            if sent >= span.length:
                break
            try:
                async for data in self._agents.read_blob(
                    node, blob.uuid, span.offset + sent, span.length - sent
                ):
                    data = data[: span.length - sent]
                    sent += len(data)
                    if data:
                        yield httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=data)
            except errors.SfmeshError as exc:
                failure = exc  # the next holder goes on from `sent`
        if sent < span.length:
            raise failure or errors.Unavailable(
                f"no node could read all of blob {blob.uuid}", reason="BLOB_UNREADABLE"
            )

    async def _holders(self, locations: list[str]) -> list[str]:
        up = set(await self._artifacts.nodes())
        holders = [node for node in locations if node in up]
        self._rng.shuffle(holders)
        return holders
