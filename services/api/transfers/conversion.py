"""`POST /artifacts/upload/{name}` (reference §3.4, with §11 Q3, Q11, Q18):
an upload, or a blob the caller already reaches, becomes the newest
version of an artifact.

Everything is checked before anything is written or sealed: the target
namespace exists and trusts the caller (404 `namespace not found`), the
request (`rules.check_convert`: one of upload_uuid and blob_uuid, type
`image` or `other`, `shared` from system, the name), then the upload is the
caller's (404 `upload not found`) and not empty (409), or the blob is one
the caller reaches (404 `blob not found`) and `created` (409). Then:

1. An upload is sealed on its node into a new blob uuid (the node answers
   its size, sha512 and format); the upload's file is gone after.
2. A `created` blob with that sha512 already in the mesh is used instead
   (Q11: no second blob of the same content held by nothing); the sealed
   copy is recorded `deleted`, so its file is accounted for until blob
   garbage collection on nodes removes it.
3. One transaction: the artifact (found by source URL in the target
   namespace, or new), its new version and `created` state, the blob's
   reference (a new blob is written with it), the blobs its pruned versions
   let go of, and the upload record's removal.
"""

from __future__ import annotations

import contextlib
import time
import uuid as uuid_module

from sfmesh.v1 import artifact_pb2, node_agent_service_pb2, records_pb2, transfer_service_pb2

from services.api.artifacts import rules as artifact_rules
from services.api.artifacts.finding import Finder, Found
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import (
    ATTEMPTS,
    ArtifactStore,
    StoredBlob,
    artifact_put,
    deltas_of,
)
from services.api.clients.events import ARTIFACT, Events
from services.api.clients.node_agents import NodeAgents
from services.api.namespaces import rules as namespace_rules
from services.api.namespaces.store import NamespaceStore
from services.api.transfers import rules
from services.api.transfers.store import StoredUpload, UploadStore, upload_delete
from services.api.transfers.uploads import Uploads
from services.common import artifact_versions, errors
from services.common.store import Operation, Put, key

BLOB_VIEW_VERSION = 6


def sealed_blob(
    blob_uuid: str, sealed: node_agent_service_pb2.SealUploadResponse, node: str, now: float
) -> records_pb2.BlobRecord:
    """The record of a blob sealed from an upload on `node`, held by nothing yet. Pure."""
    blob = artifact_pb2.Blob(
        uuid=blob_uuid,
        state=artifact_pb2.BLOB_STATE_CREATED,
        version=BLOB_VIEW_VERSION,
        size=sealed.size,
        modified=now,
        fetched_at=now,
        locations=[node],
        reference_count=0,
        sha512=sealed.sha512,
        format=sealed.format,
    )
    blob.metadata.SetInParent()
    return records_pb2.BlobRecord(blob=blob, created_at=now)


def discarded(record: records_pb2.BlobRecord, now: float) -> records_pb2.BlobRecord:
    """`record` as a duplicate nothing will hold: `deleted` at once. Pure."""
    record.blob.state = artifact_pb2.BLOB_STATE_DELETED
    record.deleted_at = now
    return record


class Conversion:
    """Uploads and blobs into artifacts."""

    def __init__(
        self,
        uploads: UploadStore,
        upload_access: Uploads,
        artifacts: ArtifactStore,
        namespaces: NamespaceStore,
        lookup: ArtifactLookup,
        finder: Finder,
        agents: NodeAgents,
        events: Events,
    ) -> None:
        self._uploads = uploads
        self._upload_access = upload_access
        self._artifacts = artifacts
        self._namespaces = namespaces
        self._lookup = lookup
        self._finder = finder
        self._agents = agents
        self._events = events

    async def convert(
        self, request: transfer_service_pb2.ConvertUploadRequest, caller: str
    ) -> artifact_pb2.Artifact:
        """Check everything, then seal (for an upload) and add the version."""
        given = request.namespace if request.HasField("namespace") else ""
        target = given or caller
        namespace_rules.check_visible(caller, await self._namespaces.get(target))
        wanted = rules.check_convert(request, caller, target)
        if wanted.upload_uuid:
            stored_upload = await self._upload_access.owned(wanted.upload_uuid, caller)
            rules.check_not_empty(stored_upload.record)
            return await self._from_upload(wanted, stored_upload)
        blob = await self._lookup.blob(wanted.blob_uuid, caller)
        rules.check_blob_created(blob.record.blob)
        return await self._add(wanted, blob.record.blob.uuid, new_blob=None, upload=None)

    async def _from_upload(
        self, wanted: rules.Conversion, stored_upload: StoredUpload
    ) -> artifact_pb2.Artifact:
        upload = stored_upload.record.upload
        blob_uuid = str(uuid_module.uuid4())
        sealed = await self._agents.seal_upload(upload.node, upload.uuid, blob_uuid)
        now = time.time()
        record = sealed_blob(blob_uuid, sealed, upload.node, now)
        twin = await self._same_content(sealed.sha512)
        if twin is not None:  # Q11: the content is in the mesh already
            await self._artifacts.put_blob(discarded(record, now))
            twin_uuid = twin.record.blob.uuid
            return await self._add(wanted, twin_uuid, new_blob=None, upload=stored_upload)
        return await self._add(wanted, blob_uuid, new_blob=record, upload=stored_upload)

    async def _same_content(self, sha512: str) -> StoredBlob | None:
        async for stored in self._artifacts.all_blobs():
            blob = stored.record.blob
            if blob.state == artifact_pb2.BLOB_STATE_CREATED and blob.sha512 == sha512:
                return stored
        return None

    async def _add(
        self,
        wanted: rules.Conversion,
        blob_uuid: str,
        *,
        new_blob: records_pb2.BlobRecord | None,
        upload: StoredUpload | None,
    ) -> artifact_pb2.Artifact:
        """Add `blob_uuid` (`new_blob` when its record is to be written) as
        the newest version of the artifact `wanted` names, in one transaction
        with the upload's removal."""
        sha512 = new_blob.blob.sha512 if new_blob is not None else await self._sha512(blob_uuid)
        now = time.time()
        for _ in range(ATTEMPTS):
            found = await self._finder.find_or_plan(
                wanted.target,
                wanted.artifact_type,
                wanted.source_url,
                lambda uuid: artifact_rules.new_record(
                    uuid=uuid,
                    artifact_type=wanted.artifact_type,
                    source_url=wanted.source_url,
                    namespace=wanted.target,
                    name=wanted.name,
                    shared=wanted.shared,
                    now=now,
                ),
            )
            record = found.record if found.new is not None else _copy(found.record)
            was = record.artifact.state
            newest = await self._newest_sha512(record)
            change = artifact_versions.add_version(record, blob_uuid, sha512, newest)
            record.artifact.state = artifact_pb2.ARTIFACT_STATE_CREATED
            writes = _artifact_writes(found, record)
            deltas = deltas_of(added=[blob_uuid] if change.added else [], released=change.released)
            if new_blob is not None:
                writes.append(_new_blob_put(new_blob, deltas.pop(blob_uuid, 0), now))
            writes += await self._artifacts.reference_writes(deltas, now=now)
            if upload is not None:
                writes.append(upload_delete(upload))
            if not await self._artifacts.commit(writes):
                continue
            self._recorded(record, was, blob_uuid, upload)
            if upload is not None:
                await self._forget_file(upload)
            return await self._lookup.view(record)
        raise errors.Aborted("the artifact kept changing; try again")

    def _recorded(
        self,
        record: records_pb2.ArtifactRecord,
        was: int,
        blob_uuid: str,
        upload: StoredUpload | None,
    ) -> None:
        uuid = record.artifact.uuid
        extra = {"blob_uuid": blob_uuid}
        if upload is not None:
            extra["upload_uuid"] = upload.record.upload.uuid
        self._events.audit(uuid, "convert upload to artifact from REST API", extra, kind=ARTIFACT)
        self._events.audit(uuid, "upload complete", {"blob_uuid": blob_uuid}, kind=ARTIFACT)
        if was != record.artifact.state:
            self._events.attribute_set(uuid, "state", "created", kind=ARTIFACT)

    async def _forget_file(self, upload: StoredUpload) -> None:
        """The sealed upload's file is gone already; a discard makes sure (a
        node that cannot be reached keeps a file no record names)."""
        with contextlib.suppress(errors.SfmeshError):
            await self._agents.discard_upload(upload.record.upload.node, upload.record.upload.uuid)

    async def _sha512(self, blob_uuid: str) -> str:
        stored = await self._artifacts.get_blob(blob_uuid)
        if stored is None or not stored.record.blob.HasField("sha512"):
            return ""
        return stored.record.blob.sha512

    async def _newest_sha512(self, record: records_pb2.ArtifactRecord) -> str:
        if not record.versions:
            return ""
        return await self._sha512(record.versions[-1].blob_uuid)


def _copy(record: records_pb2.ArtifactRecord) -> records_pb2.ArtifactRecord:
    found = records_pb2.ArtifactRecord()
    found.CopyFrom(record)
    return found


def _artifact_writes(found: Found, record: records_pb2.ArtifactRecord) -> list[Operation]:
    """The artifact's write: a new one with its source claim, or a
    compare-and-swap of the one found."""
    if found.new is not None:
        return list(found.writes())
    assert found.existing is not None
    return [artifact_put(record, found.existing.mod_revision)]


def _new_blob_put(record: records_pb2.BlobRecord, delta: int, now: float) -> Put:
    """The create-only write of a sealed blob with the references its
    artifact gives it; with none (its content was the newest version's
    already), it is written `deleted`. Pure: `record` is left as it was."""
    written = records_pb2.BlobRecord()
    written.CopyFrom(record)
    artifact_versions.change_references(written, delta, now)
    return Put(key("blob", written.blob.uuid), written.SerializeToString(), 0)
