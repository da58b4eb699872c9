"""Screenshots of this node's instances (guest-access reference §3, with
quirk 16 fixed): libvirt's screenshot of screen 0, always stored as PNG
(libvirt 9.0 asks QEMU 7.2 for PNG already, which is checked and kept as
it is; older stacks give a PPM, which is converted), kept as a new blob
in this node's blob store, and recorded `created` in one create-only
write. The record says who may read it (`owner_namespace`: the
instance's namespace, and system) and when the api's artifact sweep
deletes it (`expires_at`); blob care treats it as any other blob from then
on (replicas, checks, the file's removal once deleted). An audit event on
the instance names the blob.

A domain that is not running has no screen: `NotRunning` (406 upstream of
here), where Shaken Fist answers 500.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid as uuid_module
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError
from sfmesh.v1 import artifact_pb2, event_pb2, records_pb2

from services.common.events import EventSink
from services.common.store import Put, Store, key
from services.node_agent.blob_store import BlobStore
from services.node_agent.hypervisor import Hypervisor

BLOB_VIEW_VERSION = 6
PNG = "png"
"""The blob's `format`."""


class NotRunning(Exception):
    """The domain is not running: there is no screen to take."""


class BadImage(Exception):
    """The hypervisor's image could not be read."""


@dataclass(frozen=True)
class Shot:
    """A screenshot kept as a blob."""

    blob_uuid: str
    size: int
    """Bytes of the PNG."""
    sha512: str
    """Hex sha512 of the PNG."""


def to_png(image: bytes) -> bytes:
    """An image in any format Pillow reads as PNG: a whole PNG as it is, a
    PPM (older QEMU) converted. Pure. Raises BadImage."""
    try:
        with Image.open(io.BytesIO(image)) as opened:
            if opened.format == "PNG":
                opened.load()  # reads it whole: a truncated PNG fails here
                return image
            out = io.BytesIO()
            opened.save(out, format="PNG")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadImage(f"the hypervisor's screenshot is not an image: {exc}") from exc
    return out.getvalue()


def screenshot_record(
    shot: Shot, *, node: str, namespace: str, expires_at: float, now: float
) -> records_pb2.BlobRecord:
    """The record of a screenshot's blob: `created`, held on `node`, owned
    by `namespace`, deleted at `expires_at`. Pure."""
    blob = artifact_pb2.Blob(
        uuid=shot.blob_uuid,
        state=artifact_pb2.BLOB_STATE_CREATED,
        version=BLOB_VIEW_VERSION,
        size=shot.size,
        modified=now,
        fetched_at=now,
        locations=[node],
        sha512=shot.sha512,
        format=PNG,
    )
    blob.metadata.SetInParent()
    return records_pb2.BlobRecord(
        blob=blob, created_at=now, owner_namespace=namespace, expires_at=expires_at
    )


class Screenshots:
    """Takes screenshots of this node's domains into blobs."""

    def __init__(
        self,
        *,
        node: str,
        hypervisor: Hypervisor,
        blobs: BlobStore,
        store: Store,
        events: EventSink,
    ) -> None:
        self._node = node
        self._hypervisor = hypervisor
        self._blobs = blobs
        self._store = store
        self._events = events

    async def take(
        self, instance_uuid: str, *, namespace: str, expires_at: float, request_id: str
    ) -> Shot:
        """Screen 0 of the instance's domain as a new PNG blob owned by
        `namespace`. Raises NotRunning, BadImage, HypervisorError, OSError."""
        started = time.monotonic()
        image = await self._hypervisor.screenshot(instance_uuid)
        if image is None:
            raise NotRunning(f"instance {instance_uuid} is not running")
        png = await asyncio.to_thread(to_png, image)
        shot = await asyncio.to_thread(self._keep, str(uuid_module.uuid4()), png)
        record = screenshot_record(
            shot, node=self._node, namespace=namespace, expires_at=expires_at, now=time.time()
        )
        try:
            written = await self._store.commit(
                [Put(key("blob", shot.blob_uuid), record.SerializeToString(), 0)]
            )
        except BaseException:
            await asyncio.to_thread(self._blobs.remove, shot.blob_uuid)
            raise
        if not written:  # a uuid4 taken: never, but leave no file unrecorded
            await asyncio.to_thread(self._blobs.remove, shot.blob_uuid)
            raise OSError(f"blob {shot.blob_uuid} exists already")
        self._events.emit(
            "instance",
            instance_uuid,
            event_pb2.EVENT_TYPE_AUDIT,
            "screenshot taken",
            extra={
                "blob_uuid": shot.blob_uuid,
                "size": shot.size,
                "expires_at": expires_at,
                "request_id": request_id,
            },
            duration=time.monotonic() - started,
        )
        return shot

    def _keep(self, blob_uuid: str, png: bytes) -> Shot:
        """Write the PNG as blob `blob_uuid` (blocking)."""
        with self._blobs.writer(blob_uuid) as writer:
            writer.write(png)
            digest = writer.sha512()
            writer.commit()
        return Shot(blob_uuid=blob_uuid, size=len(png), sha512=digest)
