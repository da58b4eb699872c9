"""Blob reads (reference §6, with §11 Q14, Q15): the list (system only:
403, not upstream's 401 that makes the client log in again), one blob the
caller reaches (`lookup.py`), its events and one of its checksums, and the
search by checksum, which answers a created blob the caller reaches, or null.

Blobs record only their sha512: a search by sha1, sha256 or xxh128 is a
valid question that finds nothing (null), never a match by another hash;
asking a blob for one of those is a 400 saying so (`rules.blob_checksum`).
"""

from __future__ import annotations

from sfmesh.v1 import artifact_pb2, artifact_service_pb2

from services.api.artifacts import rules, views
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import BLOB, EventQuery, Events
from services.api.visibility import SYSTEM
from services.common import errors

LISTED = frozenset(
    {
        artifact_pb2.BLOB_STATE_INITIAL,
        artifact_pb2.BLOB_STATE_CREATED,
        artifact_pb2.BLOB_STATE_ERROR,
    }
)


class Blobs:
    """The blob read routes."""

    def __init__(self, artifacts: ArtifactStore, lookup: ArtifactLookup, events: Events) -> None:
        self._artifacts = artifacts
        self._lookup = lookup
        self._events = events

    async def list(self, node: str | None, caller: str) -> artifact_service_pb2.ListBlobsResponse:
        """Every live blob (with a copy on `node`, when given); system only."""
        if caller != SYSTEM:
            raise errors.PermissionDenied(
                "only the system namespace may list blobs", reason="NOT_SYSTEM"
            )
        reply = artifact_service_pb2.ListBlobsResponse()
        async for stored in self._artifacts.all_blobs():
            blob = stored.record.blob
            if blob.state in LISTED and (not node or node in blob.locations):
                reply.blobs.append(views.blob_view(stored.record))
        return reply

    async def get(self, uuid: str, caller: str) -> artifact_pb2.Blob:
        """One blob the caller reaches, with the instances it sees using it."""
        stored = await self._lookup.blob(uuid, caller)
        using = await self._lookup.instances_using(caller)
        return views.blob_view(stored.record, using.get(stored.record.blob.uuid, ()))

    async def events(
        self, uuid: str, query: EventQuery, caller: str
    ) -> artifact_service_pb2.ListBlobEventsResponse:
        """The events of a blob the caller reaches, as every /events route
        lists them."""
        stored = await self._lookup.blob(uuid, caller)
        events = await self._events.listed(BLOB, stored.record.blob.uuid, query)
        return artifact_service_pb2.ListBlobEventsResponse(events=events)

    async def checksum(
        self, uuid: str, algorithm: str, caller: str
    ) -> artifact_service_pb2.GetBlobChecksumResponse:
        """One checksum of a blob the caller reaches: the blob first (404),
        then the algorithm (400), in Shaken Fist's order."""
        stored = await self._lookup.blob(uuid, caller)
        reply = artifact_service_pb2.GetBlobChecksumResponse()
        digest = rules.blob_checksum(stored.record.blob, algorithm)
        if digest is not None:
            reply.checksum = digest
        return reply

    async def find(
        self, algorithm: str, digest: str, caller: str
    ) -> artifact_service_pb2.FindBlobByChecksumResponse:
        """The created blob with that checksum the caller reaches, or none."""
        rules.check_algorithm(algorithm)
        reply = artifact_service_pb2.FindBlobByChecksumResponse()
        if algorithm != rules.RECORDED or not digest:
            return reply
        wanted = digest.lower()
        async for stored in self._artifacts.all_blobs():
            blob = stored.record.blob
            if (
                blob.state == artifact_pb2.BLOB_STATE_CREATED
                and blob.sha512.lower() == wanted
                and await self._lookup.reaches(stored.record, caller)
            ):
                using = await self._lookup.instances_using(caller)
                reply.blob.CopyFrom(views.blob_view(stored.record, using.get(blob.uuid, ())))
                return reply
        return reply
