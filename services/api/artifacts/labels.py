"""Labels (reference §5, with §11 Q2, Q3, Q6, Q18): `POST /label/{name}` adds
a blob as the newest version of the label `sf://label/<ns>/<name>`,
creating it; `GET` reads it and `DELETE` deletes it (both 500 upstream).

`<ns>/<name>` names a label of namespace `<ns>`, which must trust the
caller (else 404 `namespace not found`, whether it is absent or does not
trust the caller); a plain name is the caller's. Every check runs before
anything is written: the blob must be one the caller reaches, and created.
"""

from __future__ import annotations

import time

from sfmesh.v1 import artifact_pb2, artifact_service_pb2, records_pb2

from services.api.artifacts import rules, sources
from services.api.artifacts.finding import Finder
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ATTEMPTS, ArtifactStore, StoredArtifact, deltas_of
from services.api.clients.events import ARTIFACT, Events
from services.api.namespaces import rules as namespace_rules
from services.api.namespaces.store import NamespaceStore
from services.common import artifact_versions, errors
from services.common.wire import wire_name

LABEL = artifact_pb2.ARTIFACT_TYPE_LABEL


def split_label(label_name: str, caller: str) -> tuple[str, str]:
    """(namespace, label) of a label path: `ns/label`, or the caller's. Pure."""
    namespace, _, label = label_name.rpartition("/")
    if not sources.SEGMENT.fullmatch(label) or (namespace and "/" in namespace):
        raise errors.InvalidArgument(f'"{label_name}" is not a label name')
    return namespace or caller, label


class Labels:
    """The label routes."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        namespaces: NamespaceStore,
        lookup: ArtifactLookup,
        finder: Finder,
        events: Events,
    ) -> None:
        self._artifacts = artifacts
        self._namespaces = namespaces
        self._lookup = lookup
        self._finder = finder
        self._events = events

    async def update(
        self, request: artifact_service_pb2.UpdateLabelRequest, caller: str
    ) -> artifact_pb2.Artifact:
        """Add the blob as the label's newest version, creating the label."""
        namespace, label = split_label(request.label_name, caller)
        namespace_rules.check_visible(caller, await self._namespaces.get(namespace))
        if not request.blob_uuid:
            raise errors.InvalidArgument("no blob_uuid specified")
        max_versions = 0
        if request.HasField("max_versions"):
            max_versions = rules.check_max_versions(request.max_versions)
        blob = (await self._lookup.blob(request.blob_uuid, caller)).record.blob
        if blob.state != artifact_pb2.BLOB_STATE_CREATED:
            state = wire_name(artifact_pb2.BlobState.DESCRIPTOR, blob.state)
            raise errors.Conflict(
                f"blob {blob.uuid} is not ready (state={state})",
                reason="BLOB_NOT_READY",
            )
        url = sources.label_url(namespace, label)
        now = time.time()
        for _ in range(ATTEMPTS):
            found = await self._finder.find_or_plan(
                namespace,
                LABEL,
                url,
                lambda uuid: rules.new_record(
                    uuid=uuid,
                    artifact_type=LABEL,
                    source_url=url,
                    namespace=namespace,
                    name=request.label_name,
                    now=now,
                    max_versions=max_versions,
                ),
            )
            newest = await self._newest_sha512(found.record)

            def add(record: records_pb2.ArtifactRecord, newest: str = newest) -> dict[str, int]:
                change = artifact_versions.add_version(
                    record, blob.uuid, blob.sha512 if blob.HasField("sha512") else "", newest
                )
                record.artifact.state = artifact_pb2.ARTIFACT_STATE_CREATED
                added = [change.blob_uuid] if change.added else []
                return deltas_of(added=added, released=change.released)

            if found.new is not None:
                deltas = add(found.new)
                writes = found.writes() + await self._artifacts.reference_writes(deltas, now=now)
                if not await self._artifacts.commit(writes):
                    continue
                record = found.new
                self._events.attribute_set(record.artifact.uuid, "state", "created", kind=ARTIFACT)
            else:
                assert found.existing is not None
                try:
                    record = await self._artifacts.change(found.uuid, add, now=now)
                except errors.NotFound:  # deleted meanwhile: look again
                    continue
            self._events.audit(
                record.artifact.uuid,
                "create request from REST API",
                {"blob_uuid": blob.uuid},
                kind=ARTIFACT,
            )
            return await self._lookup.view(record)
        raise errors.Aborted("the label kept changing; try again")

    async def get(self, label_name: str, caller: str) -> artifact_pb2.Artifact:
        """The label, with the instances using its blobs."""
        stored = await self.find(label_name, caller)
        return await self._lookup.view(stored.record, await self._lookup.instances_using(caller))

    async def delete(self, label_name: str, caller: str) -> artifact_pb2.Artifact:
        """Delete the label; its versions let go of their blobs (§11 Q6)."""
        stored = await self.find(label_name, caller)
        uuid = stored.record.artifact.uuid
        self._events.audit(uuid, "deletion request from REST API", kind=ARTIFACT)
        record = await self._artifacts.change(
            uuid,
            lambda record: deltas_of(released=rules.mark_deleted(record, time.time())),
            now=time.time(),
        )
        self._events.attribute_set(uuid, "state", "deleted", kind=ARTIFACT)
        return await self._lookup.view(record)

    async def find(self, label_name: str, caller: str) -> StoredArtifact:
        """The live label a path names, in a namespace trusting the caller."""
        missing = errors.NotFound(f"label {label_name} not found", reason="LABEL_NOT_FOUND")
        try:
            namespace, label = split_label(label_name, caller)
        except errors.InvalidArgument:
            raise missing from None
        if not await self._lookup.trusts(caller).trusted_by(namespace):
            raise namespace_rules.not_found()  # as POST answers: absent or not trusting
        url = sources.label_url(namespace, label)
        async for stored in self._artifacts.all():
            artifact = stored.record.artifact
            if (
                artifact.artifact_type == LABEL
                and artifact.source_url == url
                and artifact.namespace == namespace
                and rules.is_active(stored.record)
            ):
                return stored
        raise missing

    async def _newest_sha512(self, record: records_pb2.ArtifactRecord) -> str:
        if not record.versions:
            return ""
        stored = await self._artifacts.get_blob(record.versions[-1].blob_uuid)
        if stored is None or not stored.record.blob.HasField("sha512"):
            return ""
        return stored.record.blob.sha512
