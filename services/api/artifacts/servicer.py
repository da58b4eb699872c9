"""ArtifactService: artifacts, their versions, sharing, metadata and events
(reference §3), labels (§5, `labels.py`), blob reads, events and checksums
(§6, `blobs.py`) and cache requests (§3.3, `caching.py`).

Reads need list visibility, writes ownership (`rules.py`); anything else is
404 `artifact not found`. The choices where Shaken Fist has a bug are in
docs/compatibility.md.
"""

from __future__ import annotations

import time

import grpc
from google.protobuf import empty_pb2, struct_pb2
from sfmesh.v1 import artifact_pb2, artifact_service_pb2, artifact_service_pb2_grpc, records_pb2

from services.api.artifacts import deletion, rules, views
from services.api.artifacts.blobs import Blobs
from services.api.artifacts.caching import Caching
from services.api.artifacts.deletion import ArtifactDeletion
from services.api.artifacts.labels import Labels
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ArtifactStore, StoredArtifact, StoredBlob, deltas_of
from services.api.clients.events import ARTIFACT, BLOB, Events
from services.api.metadata.handler import MetadataEvents, MetadataHandler
from services.api.namespaces import rules as namespace_rules
from services.api.namespaces.store import NamespaceStore
from services.common import artifact_versions, errors
from services.common.interceptors import caller


def artifact_metadata(record: records_pb2.ArtifactRecord, ref: str) -> struct_pb2.Struct:
    """An artifact's metadata in its record. Pure."""
    return record.artifact.metadata


def blob_metadata(record: records_pb2.BlobRecord, uuid: str) -> struct_pb2.Struct:
    """A blob's metadata in its record. Pure."""
    return record.blob.metadata


class ArtifactServicer(artifact_service_pb2_grpc.ArtifactServiceServicer):
    """Artifacts, labels and blobs in etcd."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        namespaces: NamespaceStore,
        lookup: ArtifactLookup,
        caching: Caching,
        labels: Labels,
        deletion: ArtifactDeletion,
        events: Events,
    ) -> None:
        self._artifacts = artifacts
        self._deletion = deletion
        self._namespaces = namespaces
        self._lookup = lookup
        self._caching = caching
        self._labels = labels
        self._blobs = Blobs(artifacts, lookup, events)
        self._events = events
        self._artifact_metadata = MetadataHandler(
            find=self._managed,
            metadata_of=artifact_metadata,
            update=artifacts.update,
            recorded=MetadataEvents(events, ARTIFACT, lambda s: s.record.artifact.uuid),
        )
        self._blob_metadata: MetadataHandler[StoredBlob, records_pb2.BlobRecord] = MetadataHandler(
            find=self._blob, metadata_of=blob_metadata, update=artifacts.update_blob
        )
        self._blob_metadata_writes: MetadataHandler[StoredBlob, records_pb2.BlobRecord] = (
            MetadataHandler(
                find=self._managed_blob,
                metadata_of=blob_metadata,
                update=artifacts.update_blob,
                recorded=MetadataEvents(events, BLOB, lambda s: s.record.blob.uuid),
            )
        )

    async def _managed(self, ref: str) -> StoredArtifact:
        return await self._lookup.managed(ref, caller().namespace)

    async def _blob(self, uuid: str) -> StoredBlob:
        return await self._lookup.blob(uuid, caller().namespace)

    async def _managed_blob(self, uuid: str) -> StoredBlob:
        return await self._lookup.blob(uuid, caller().namespace, manage=True)

    async def ListArtifacts(
        self, request: artifact_service_pb2.ListArtifactsRequest, context: grpc.aio.ServicerContext
    ) -> artifact_service_pb2.ListArtifactsResponse:
        reply = artifact_service_pb2.ListArtifactsResponse()
        node = request.node if request.HasField("node") else ""
        for stored in await self._lookup.visible(caller().namespace):
            view = await self._lookup.view(stored.record)
            if node and not await self._newest_on(stored.record, node):
                continue
            reply.artifacts.append(view)
        return reply

    async def _newest_on(self, record: records_pb2.ArtifactRecord, node: str) -> bool:
        if not record.versions:
            return False
        blob = await self._artifacts.get_blob(record.versions[-1].blob_uuid)
        return blob is not None and node in blob.record.blob.locations

    async def CacheArtifact(
        self, request: artifact_service_pb2.CacheArtifactRequest, context: grpc.aio.ServicerContext
    ) -> artifact_pb2.Artifact:
        return await self._caching.cache(request, caller().namespace)

    async def GetArtifact(
        self, request: artifact_service_pb2.GetArtifactRequest, context: grpc.aio.ServicerContext
    ) -> artifact_pb2.Artifact:
        namespace = caller().namespace
        stored = await self._lookup.readable(request.ref, namespace)
        return await self._lookup.view(stored.record, await self._lookup.instances_using(namespace))

    async def DeleteArtifact(
        self, request: artifact_service_pb2.DeleteArtifactRequest, context: grpc.aio.ServicerContext
    ) -> artifact_pb2.Artifact:
        stored = await self._lookup.managed(request.ref, caller().namespace)
        if stored.record.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED:
            return await self._lookup.view(stored.record)
        record = await self._deletion.delete(stored.record.artifact.uuid, deletion.REQUESTED)
        return await self._lookup.view(record)

    async def DeleteAllArtifacts(
        self,
        request: artifact_service_pb2.DeleteAllArtifactsRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_service_pb2.DeleteAllArtifactsResponse:
        given = request.namespace if request.HasField("namespace") else None
        exists = given is not None and await self._namespaces.get(given) is not None
        target = namespace_rules.delete_all_target(
            caller().namespace, given, exists, request.confirm
        )
        uuids = await self._deletion.delete_all(target, deletion.REQUESTED)
        return artifact_service_pb2.DeleteAllArtifactsResponse(uuids=uuids)

    async def ListArtifactVersions(
        self,
        request: artifact_service_pb2.ListArtifactVersionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_service_pb2.ListArtifactVersionsResponse:
        namespace = caller().namespace
        record = (await self._lookup.readable(request.ref, namespace)).record
        blobs = await self._artifacts.blobs(views.blobs_of([record]))
        using = await self._lookup.instances_using(namespace)
        reply = artifact_service_pb2.ListArtifactVersionsResponse()
        for version in record.versions:
            blob = blobs.get(version.blob_uuid)
            if blob is not None:  # a missing blob record is skipped (§11 Q19)
                uuid = version.blob_uuid
                reply.versions.append(
                    views.blob_view(blob.record, using.get(uuid, ()), version.index)
                )
        return reply

    async def SetArtifactMaxVersions(
        self,
        request: artifact_service_pb2.SetArtifactMaxVersionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored = await self._lookup.managed(request.ref, caller().namespace)
        wanted = artifact_versions.DEFAULT_MAX_VERSIONS
        if request.HasField("max_versions"):
            wanted = rules.check_max_versions(request.max_versions)
        uuid = stored.record.artifact.uuid
        self._events.audit(
            uuid, "max versions set from REST API", {"max_versions": wanted}, kind=ARTIFACT
        )

        def pruned(record: records_pb2.ArtifactRecord) -> dict[str, int]:
            record.artifact.max_versions = wanted
            return deltas_of(released=artifact_versions.prune(record))

        await self._artifacts.change(uuid, pruned, now=time.time())
        return empty_pb2.Empty()

    async def DeleteArtifactVersion(
        self,
        request: artifact_service_pb2.DeleteArtifactVersionRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_pb2.Artifact:
        stored = await self._lookup.managed(request.ref, caller().namespace)
        index = rules.parse_version_id(request.version_id)
        uuid = stored.record.artifact.uuid

        def removed(record: records_pb2.ArtifactRecord) -> dict[str, int]:
            change = artifact_versions.remove_version(record, index)
            if change is None:
                raise errors.NotFound("artifact index not found", reason="INDEX_NOT_FOUND")
            if not record.versions:  # the only version: the artifact goes too
                rules.mark_deleted(record, time.time())
            return deltas_of(released=change.released)

        record = await self._artifacts.change(uuid, removed, now=time.time())
        self._events.audit(uuid, "deleted index from artifact", {"index": index}, kind=ARTIFACT)
        if record.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED:
            self._events.attribute_set(uuid, "state", "deleted", kind=ARTIFACT)
        return await self._lookup.view(record)

    async def ShareArtifact(
        self, request: artifact_service_pb2.ShareArtifactRequest, context: grpc.aio.ServicerContext
    ) -> artifact_pb2.Artifact:
        return await self._set_shared(request.ref, True)

    async def UnshareArtifact(
        self,
        request: artifact_service_pb2.UnshareArtifactRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_pb2.Artifact:
        return await self._set_shared(request.ref, False)

    async def _set_shared(self, ref: str, shared: bool) -> artifact_pb2.Artifact:
        stored = await self._lookup.managed(ref, caller().namespace)
        check = rules.check_shareable if shared else rules.check_unshareable
        check(stored.record.artifact)
        uuid = stored.record.artifact.uuid
        verb = "share" if shared else "unshare"
        self._events.audit(uuid, f"artifact {verb} request from REST API", kind=ARTIFACT)

        def mark(record: records_pb2.ArtifactRecord) -> None:
            check(record.artifact)
            record.artifact.shared = shared

        record = await self._artifacts.update(stored, mark)
        self._events.attribute_set(uuid, "shared", shared, kind=ARTIFACT)
        return await self._lookup.view(record)

    async def GetArtifactMetadata(
        self,
        request: artifact_service_pb2.GetArtifactMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_service_pb2.GetArtifactMetadataResponse:
        metadata = await self._artifact_metadata.get(request.ref)
        return artifact_service_pb2.GetArtifactMetadataResponse(metadata=metadata)

    async def SetArtifactMetadata(
        self,
        request: artifact_service_pb2.SetArtifactMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._artifact_metadata.set(request.ref, request.key, request.value)

    async def DeleteArtifactMetadata(
        self,
        request: artifact_service_pb2.DeleteArtifactMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._artifact_metadata.delete(request.ref, request.key)

    async def ListArtifactEvents(
        self,
        request: artifact_service_pb2.ListArtifactEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_service_pb2.ListArtifactEventsResponse:
        stored = await self._lookup.readable(request.ref, caller().namespace)
        events = await self._events.listed(ARTIFACT, stored.record.artifact.uuid, request)
        return artifact_service_pb2.ListArtifactEventsResponse(events=events)

    async def UpdateLabel(
        self, request: artifact_service_pb2.UpdateLabelRequest, context: grpc.aio.ServicerContext
    ) -> artifact_pb2.Artifact:
        return await self._labels.update(request, caller().namespace)

    async def GetLabel(
        self, request: artifact_service_pb2.GetLabelRequest, context: grpc.aio.ServicerContext
    ) -> artifact_pb2.Artifact:
        return await self._labels.get(request.label_name, caller().namespace)

    async def DeleteLabel(
        self, request: artifact_service_pb2.DeleteLabelRequest, context: grpc.aio.ServicerContext
    ) -> artifact_pb2.Artifact:
        return await self._labels.delete(request.label_name, caller().namespace)

    async def ListBlobs(
        self, request: artifact_service_pb2.ListBlobsRequest, context: grpc.aio.ServicerContext
    ) -> artifact_service_pb2.ListBlobsResponse:
        node = request.node if request.HasField("node") else None
        return await self._blobs.list(node, caller().namespace)

    async def GetBlob(
        self, request: artifact_service_pb2.GetBlobRequest, context: grpc.aio.ServicerContext
    ) -> artifact_pb2.Blob:
        return await self._blobs.get(request.uuid, caller().namespace)

    async def FindBlobByChecksum(
        self,
        request: artifact_service_pb2.FindBlobByChecksumRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_service_pb2.FindBlobByChecksumResponse:
        return await self._blobs.find(request.algorithm, request.hash, caller().namespace)

    async def GetBlobMetadata(
        self,
        request: artifact_service_pb2.GetBlobMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_service_pb2.GetBlobMetadataResponse:
        metadata = await self._blob_metadata.get(request.uuid)
        return artifact_service_pb2.GetBlobMetadataResponse(metadata=metadata)

    async def SetBlobMetadata(
        self,
        request: artifact_service_pb2.SetBlobMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._blob_metadata_writes.set(request.uuid, request.key, request.value)

    async def DeleteBlobMetadata(
        self,
        request: artifact_service_pb2.DeleteBlobMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._blob_metadata_writes.delete(request.uuid, request.key)

    async def ListBlobEvents(
        self,
        request: artifact_service_pb2.ListBlobEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_service_pb2.ListBlobEventsResponse:
        return await self._blobs.events(request.uuid, request, caller().namespace)

    async def GetBlobChecksum(
        self,
        request: artifact_service_pb2.GetBlobChecksumRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_service_pb2.GetBlobChecksumResponse:
        return await self._blobs.checksum(request.uuid, request.algorithm, caller().namespace)
