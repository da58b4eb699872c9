"""Artifact and blob records written straight into etcd, as the api and the
node agents write them, for the api's store-level tests: a blob with no
bytes anywhere, and an artifact whose versions hold references on blobs."""

from __future__ import annotations

import hashlib
import time
import uuid

from sfmesh.v1 import artifact_pb2, records_pb2

from services.api.artifacts import rules
from services.api.artifacts.store import ArtifactStore, artifact_put, deltas_of
from services.common import artifact_versions
from services.common.store import Put


def blob_record(
    *,
    state: artifact_pb2.BlobState = artifact_pb2.BLOB_STATE_CREATED,
    references: int = 0,
    deleted_at: float = 0.0,
    depends_on: str = "",
) -> records_pb2.BlobRecord:
    """A blob record of a few made-up bytes on node `sf-1`."""
    name = str(uuid.uuid4())
    blob = artifact_pb2.Blob(
        uuid=name,
        state=state,
        version=6,
        size=5,
        locations=["sf-1"],
        reference_count=references,
        sha512=hashlib.sha512(name.encode()).hexdigest(),
        format="raw",
    )
    if depends_on:
        blob.depends_on = depends_on
    blob.metadata.SetInParent()
    return records_pb2.BlobRecord(blob=blob, created_at=time.time(), deleted_at=deleted_at)


async def put_blob(artifacts: ArtifactStore, record: records_pb2.BlobRecord) -> str:
    """Write a new blob record; its uuid."""
    assert await artifacts.put_blob(record)
    return record.blob.uuid


async def put_artifact(
    artifacts: ArtifactStore,
    namespace: str,
    blobs: list[str],
    *,
    deleted_at: float = 0.0,
    source_key: bool = False,
) -> str:
    """Write a label-like image artifact of `namespace` with a version per
    blob, adding a reference to each, as a label update does; deleted at
    `deleted_at` when given (its versions then hold no references, as after
    a delete). `source_key`: write the key naming it by its source URL too."""
    name = str(uuid.uuid4())
    record = rules.new_record(
        uuid=name,
        artifact_type=artifact_pb2.ARTIFACT_TYPE_IMAGE,
        source_url=f"https://example.com/{name}.qcow2",
        namespace=namespace,
        name=f"a-{name[:8]}",
        now=time.time(),
        max_versions=max(len(blobs), 1),
    )
    for blob_uuid in blobs:
        artifact_versions.add_version(record, blob_uuid)
    record.artifact.state = artifact_pb2.ARTIFACT_STATE_CREATED
    writes: list[Put] = [artifact_put(record, 0)]
    if deleted_at:
        rules.mark_deleted(record, deleted_at)
        writes = [artifact_put(record, 0)]
    else:
        writes += await artifacts.reference_writes(deltas_of(added=blobs), now=time.time())
    if source_key:
        claim, _ = await artifacts.source_claim(
            namespace, record.artifact.artifact_type, record.artifact.source_url, name
        )
        writes.append(claim)
    assert await artifacts.commit(writes)
    return name
