"""Recording that a snapshot's reserved blob will not be made: the blob
`error`, and its snapshot artifact `error` too when that was its first
snapshot (``artifact_versions.fail_reservation``, the rule the api applies
as well), in one compare-and-swap over both records.

Used by a copy that failed (``snapshots.py``) and by the blob care marking
the reservations of a maker that will never make them
(``abandoned_blobs.py``), which re-judges the blob as it reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sfmesh.v1 import event_pb2, records_pb2

from services.common import artifact_versions
from services.common.events import EventSink
from services.common.store import Operation, Put, Store, key

ATTEMPTS = 8
"""Tries when another writer changed a record between read and write."""


Judge = Callable[[records_pb2.BlobRecord], str | None]
"""judge(blob as read): why its reservation fails (the artifact's
`error_message`), or None to leave it be."""


@dataclass(frozen=True)
class Failed:
    """What recording a failed reservation wrote."""

    blob: records_pb2.BlobRecord
    """The blob as written (`error`)."""
    message: str
    """Why, as the judge said."""
    artifact_failed: str = ""
    """The artifact made `error`, when one was."""


def because(message: str) -> Judge:
    """A judge failing every reservation it is asked about, with `message`."""
    return lambda record: message


async def fail(store: Store, blob_uuid: str, judge: Judge) -> Failed | None:
    """Mark the reserved blob `blob_uuid` `error`, and its artifact as the
    rule says, when the blob as read is `initial` and `judge` gives a
    reason; what this call wrote, or None when it wrote nothing (the blob
    is gone or has an outcome already, the judge let it be, or others kept
    changing the records)."""
    for _ in range(ATTEMPTS):
        blob_item = await store.get(key("blob", blob_uuid))
        if blob_item is None:
            return None
        blob = records_pb2.BlobRecord.FromString(blob_item.value)
        message = judge(blob)
        if message is None:
            return None
        artifact, artifact_revision = None, 0
        if blob.artifact_uuid:
            artifact_item = await store.get(key("artifact", blob.artifact_uuid))
            if artifact_item is not None:
                artifact = records_pb2.ArtifactRecord.FromString(artifact_item.value)
                artifact_revision = artifact_item.mod_revision
        blob_changed, artifact_changed = artifact_versions.fail_reservation(blob, artifact, message)
        if not blob_changed:
            return None
        writes: list[Operation] = [
            Put(key("blob", blob_uuid), blob.SerializeToString(), blob_item.mod_revision)
        ]
        failed_artifact = ""
        if artifact is not None and artifact_changed:
            failed_artifact = artifact.artifact.uuid
            at = key("artifact", failed_artifact)
            writes.append(Put(at, artifact.SerializeToString(), artifact_revision))
        if await store.commit(writes):
            return Failed(blob, message, failed_artifact)
    return None


def artifact_failed_event(events: EventSink, failed: Failed) -> None:
    """The `set attribute` event of an artifact `fail` made `error`."""
    if failed.artifact_failed:
        events.emit(
            "artifact",
            failed.artifact_failed,
            event_pb2.EVENT_TYPE_MUTATE,
            "set attribute",
            extra={"attribute": "state", "value": "error", "error_message": failed.message},
        )
