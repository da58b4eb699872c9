"""Deleting artifacts (reference §3.5, §3.6, §9.7 "namespace gone"): one
artifact, every live artifact of a namespace, and the artifacts of a
namespace being deleted. Each delete is one transaction over the artifact
and the blobs its versions let go of (one reference each, `rules.mark_deleted`);
an artifact already deleted changes nothing (§11 Q4), so two deletes racing,
or a sweep after a request, never free a blob twice.
"""

from __future__ import annotations

import contextlib
import time

from sfmesh.v1 import artifact_pb2, records_pb2

from services.api.artifacts import rules
from services.api.artifacts.store import ArtifactStore, deltas_of
from services.api.clients.events import ARTIFACT, Events
from services.common import errors

REQUESTED = "deletion request from REST API"
"""The audit of `DELETE /artifacts[/{ref}]`."""
BY_NAMESPACE = "deletion request via namespace deletion from REST API"
"""The audit of an artifact deleted with its namespace."""


class ArtifactDeletion:
    """Deletes artifacts and lets go of their blobs."""

    def __init__(self, artifacts: ArtifactStore, events: Events) -> None:
        self._artifacts = artifacts
        self._events = events

    async def delete(self, uuid: str, audit: str) -> records_pb2.ArtifactRecord:
        """Delete artifact `uuid` once, recording `audit` on it; its record
        as it is now (404 when it is gone)."""
        self._events.audit(uuid, audit, kind=ARTIFACT)
        deleted_now = False

        def deleted(record: records_pb2.ArtifactRecord) -> dict[str, int]:
            nonlocal deleted_now
            deleted_now = record.artifact.state != artifact_pb2.ARTIFACT_STATE_DELETED
            if not deleted_now:
                return {}
            return deltas_of(released=rules.mark_deleted(record, time.time()))

        record = await self._artifacts.change(uuid, deleted, now=time.time())
        if deleted_now:
            self._events.attribute_set(uuid, "state", "deleted", kind=ARTIFACT)
        return record

    async def delete_all(self, namespace: str, audit: str) -> list[str]:
        """Delete every live artifact owned by `namespace`; their uuids."""
        found = []
        async for stored in self._artifacts.all():
            artifact = stored.record.artifact
            if artifact.namespace == namespace and rules.is_active(stored.record):
                found.append(artifact.uuid)
                with contextlib.suppress(errors.NotFound):  # gone meanwhile: fine
                    await self.delete(artifact.uuid, audit)
        return found

    async def namespace_deleted(self, namespace: str) -> None:
        """What goes with a deleted namespace: its live artifacts."""
        await self.delete_all(namespace, BY_NAMESPACE)
