"""The snapshot routes of InstanceService (reference §7): `POST` starts a
copy of an instance's disks and answers at once; `GET` lists the copies.

A snapshot request checks, in order: the instance (owner or system; trusts
do not count: 404 `instance not found`), that it is `created` (406), and
`max_versions`. Then, per device (`snapshot_rules.choose_devices`): the
device's snapshot artifact is found or made in the instance's namespace and
a blob record reserved for the copy (`initial`), in one transaction; the
node agent hosting the instance is asked to make the copy, which it does
as a task of its own and records in etcd: the blob `created` and the
version added at once, or the blob `error`. A node agent that cannot be
asked leaves the reserved blobs `error` and answers 503. The reservation
names the hosting node (`maker_node`), so a copy lost with its node agent
does not leave the blob `initial` for ever: node agents mark it `error`
(``services/node_agent/abandoned_blobs.py``).
"""

from __future__ import annotations

import time
import uuid as uuid_module
from typing import TypeVar

from sfmesh.v1 import artifact_pb2, instance_pb2, instance_service_pb2, records_pb2

from services.api.artifacts import rules as artifact_rules
from services.api.artifacts.finding import Finder, Found
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ATTEMPTS, ArtifactStore, artifact_put, blob_put
from services.api.clients.events import ARTIFACT, Events
from services.api.clients.node_agents import NodeAgents
from services.api.instances import snapshot_rules
from services.api.instances.lookup import InstanceLookup
from services.api.instances.power import check_ready
from services.common import artifact_versions, errors
from services.common.interceptors import caller, request_id
from services.common.store import Put, key

BLOB_VIEW_VERSION = 6


def reserved_blob(
    blob_uuid: str, now: float, maker_node: str, artifact_uuid: str
) -> records_pb2.BlobRecord:
    """The record of a blob a snapshot will make on node `maker_node`, a
    version of `artifact_uuid` to be: `initial`, no bytes yet. Pure."""
    blob = artifact_pb2.Blob(
        uuid=blob_uuid, state=artifact_pb2.BLOB_STATE_INITIAL, version=BLOB_VIEW_VERSION
    )
    blob.metadata.SetInParent()
    return records_pb2.BlobRecord(
        blob=blob, created_at=now, maker_node=maker_node, artifact_uuid=artifact_uuid
    )


class Snapshots:
    """Starts and lists snapshots of instances."""

    def __init__(
        self,
        lookup: InstanceLookup,
        artifacts: ArtifactStore,
        artifact_lookup: ArtifactLookup,
        finder: Finder,
        events: Events,
        node_agents: NodeAgents,
        *,
        default_thin: bool = False,
    ) -> None:
        self._default_thin = default_thin
        """Whether a request without `thin` copies only disks' own layers
        (Shaken Fist's SNAPSHOTS_DEFAULT_TO_THIN)."""
        self._lookup = lookup
        self._artifacts = artifacts
        self._artifact_lookup = artifact_lookup
        self._finder = finder
        self._events = events
        self._node_agents = node_agents

    async def take(
        self, request: instance_service_pb2.SnapshotInstanceRequest
    ) -> instance_service_pb2.SnapshotInstanceResponse:
        """Start copying the chosen disks; what was started, by device."""
        instance = (await self._lookup.resolve(request.ref)).record.instance
        check_ready(instance)
        max_versions = 0
        if request.HasField("max_versions"):
            max_versions = artifact_rules.check_max_versions(request.max_versions)
        devices = snapshot_rules.choose_devices(
            instance.disks,
            device=request.device if request.HasField("device") else None,
            every=request.all,
            uefi=instance.uefi,
        )
        thin = request.thin if request.HasField("thin") else self._default_thin  # §11 Q22
        self._events.audit(instance.uuid, "snapshot request from REST API")
        reply = instance_service_pb2.SnapshotInstanceResponse()
        for device in devices:
            reply.devices[device].CopyFrom(await self._reserve(instance, device, max_versions))
        try:
            for device, started in reply.devices.items():
                await self._node_agents.snapshot_disk(
                    instance.node,
                    instance_uuid=instance.uuid,
                    device=device,
                    artifact_uuid=started.artifact_uuid,
                    blob_uuid=started.blob_uuid,
                    request_id=request_id(),
                    thin=thin,
                )
        except errors.SfmeshError as exc:
            await self._give_up(list(reply.devices.values()), f"snapshot not started: {exc}")
            self._events.audit(instance.uuid, "snapshot failed")
            raise
        self._events.audit(instance.uuid, "snapshot", snapshot_rules.answer_extra(reply))
        return reply

    async def listing(
        self, request: instance_service_pb2.ListInstanceSnapshotsRequest
    ) -> instance_service_pb2.ListInstanceSnapshotsResponse:
        """Every version of every live snapshot artifact of the instance."""
        instance = (await self._lookup.resolve(request.ref)).record.instance
        records = [
            stored.record
            async for stored in self._artifacts.all()
            if snapshot_rules.device_of(stored.record, instance.uuid) is not None
        ]
        wanted = [version.blob_uuid for record in records for version in record.versions]
        blobs = {uuid: s.record for uuid, s in (await self._artifacts.blobs(wanted)).items()}
        using = await self._artifact_lookup.instances_using(caller().namespace)
        items = snapshot_rules.list_items(records, blobs, instance.uuid, using)
        return instance_service_pb2.ListInstanceSnapshotsResponse(snapshots=items)

    async def _reserve(
        self, instance: instance_pb2.Instance, device: str, max_versions: int
    ) -> instance_service_pb2.SnapshotDevice:
        """Find or make the device's snapshot artifact and reserve a blob for
        the copy, in one transaction."""
        uuid, namespace = instance.uuid, instance.namespace
        url = snapshot_rules.source_url(uuid, device)
        now = time.time()
        for _ in range(ATTEMPTS):
            found: Found = await self._finder.find_or_plan(
                namespace,
                snapshot_rules.SNAPSHOT,
                url,
                lambda new_uuid: artifact_rules.new_record(
                    uuid=new_uuid,
                    artifact_type=snapshot_rules.SNAPSHOT,
                    source_url=url,
                    namespace=namespace,
                    name=snapshot_rules.artifact_name(uuid, device),
                    now=now,
                    max_versions=max_versions,
                ),
            )
            blob = reserved_blob(str(uuid_module.uuid4()), now, instance.node, found.uuid)
            reserve = Put(key("blob", blob.blob.uuid), blob.SerializeToString(), 0)
            if await self._artifacts.commit([*found.writes(), reserve]):
                if found.new is not None:
                    self._events.audit(found.uuid, "snapshot artifact created", kind=ARTIFACT)
                    self._events.attribute_set(found.uuid, "state", "initial", kind=ARTIFACT)
                return instance_service_pb2.SnapshotDevice(
                    source_url=url, artifact_uuid=found.uuid, blob_uuid=blob.blob.uuid
                )
        raise errors.Aborted("the snapshot artifact kept changing; try again")

    async def _give_up(
        self, started: list[instance_service_pb2.SnapshotDevice], message: str
    ) -> None:
        """Mark the reserved blobs no node agent will make `error`, with each
        artifact whose first snapshot that was
        (``artifact_versions.fail_reservation``)."""
        for device in started:
            try:
                failed = await self._fail_reservation(device, message)
            except errors.SfmeshError:
                continue  # etcd trouble: the node agents' sweep marks it later
            if failed:
                uuid = device.artifact_uuid
                self._events.attribute_set(uuid, "state", "error", kind=ARTIFACT)

    async def _fail_reservation(
        self, device: instance_service_pb2.SnapshotDevice, message: str
    ) -> bool:
        """One reservation failed, in one transaction; whether the artifact
        became `error` too."""
        for _ in range(ATTEMPTS):
            stored_blob = await self._artifacts.get_blob(device.blob_uuid)
            if stored_blob is None:
                return False
            stored_artifact = await self._artifacts.get(device.artifact_uuid)
            blob = _copy(stored_blob.record)
            artifact = _copy(stored_artifact.record) if stored_artifact else None
            blob_changed, artifact_changed = artifact_versions.fail_reservation(
                blob, artifact, message
            )
            if not blob_changed:
                return False  # the node agent recorded an outcome meanwhile
            writes = [blob_put(stored_blob, blob)]
            if artifact is not None and stored_artifact is not None and artifact_changed:
                writes.append(artifact_put(artifact, stored_artifact.mod_revision))
            if await self._artifacts.commit(writes):
                return artifact_changed
        return False


R = TypeVar("R", records_pb2.ArtifactRecord, records_pb2.BlobRecord)


def _copy(record: R) -> R:
    fresh = type(record)()
    fresh.CopyFrom(record)
    return fresh
