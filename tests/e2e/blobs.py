"""Blobs written straight into the mesh's etcd, for tests that need a real
blob record before node agents fetch images into blobs themselves (the node
agent side of issue 13). The record is what a node agent writes: `created`,
a size, a sha512, a location; no bytes exist anywhere."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

from sfmesh.v1 import artifact_pb2, records_pb2

from devmesh.mesh import Mesh
from services.common.store import Put, Store, key


def put_blob(
    mesh: Mesh, content: bytes, *, node: str = "sf-1", initial: bool = False
) -> dict[str, str]:
    """Write a `created` blob of `content` (by its sha512) with no
    references; its uuid and sha512. `initial`: a blob still being made
    instead, with no copy and no sha512 recorded yet."""
    blob = artifact_pb2.Blob(
        uuid=str(uuid.uuid4()),
        state=artifact_pb2.BLOB_STATE_INITIAL if initial else artifact_pb2.BLOB_STATE_CREATED,
        version=6,
        size=len(content),
        modified=time.time(),
        fetched_at=time.time(),
        locations=[] if initial else [node],
        format="raw",
    )
    digest = hashlib.sha512(content).hexdigest()
    if not initial:
        blob.sha512 = digest
    blob.metadata.SetInParent()
    record = records_pb2.BlobRecord(blob=blob, created_at=time.time())

    async def write() -> None:
        store = Store(f"127.0.0.1:{mesh.ports.etcd_client}")
        try:
            assert await store.commit([Put(key("blob", blob.uuid), record.SerializeToString(), 0)])
        finally:
            await store.close()

    asyncio.run(write())
    return {"uuid": blob.uuid, "sha512": digest}


def read_record(mesh: Mesh, kind: str, uuid: str) -> bytes | None:
    """The stored value of one record, or None."""

    async def read() -> bytes | None:
        store = Store(f"127.0.0.1:{mesh.ports.etcd_client}")
        try:
            item = await store.get(key(kind, uuid))
            return None if item is None else item.value
        finally:
            await store.close()

    return asyncio.run(read())
