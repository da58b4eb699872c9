"""Which artifact or blob a request names, and whether the caller may read
or manage it (reference §2.4, §2.5, §3; issue 13's isolation).

- An artifact ref is a UUID (any state, read directly) or a name among the
  active artifacts visible to the caller (`rules.pick_by_name`). Anything
  the caller may not read or manage is 404 `artifact not found`.
- A blob has no namespace. The caller reaches it when it is system, or when
  an active artifact it sees holds a version of it, or a live instance it
  sees has a disk built from it; it manages it (metadata writes) the same
  way, through artifacts it manages and its instances, never through a
  shared artifact. A blob owned outright (a screenshot: its record's
  `owner_namespace`) is reached and managed by that namespace and system
  alone, trusts or not. Any other blob is 404 `blob not found`.

Reads scan the artifact (and, for blobs, instance) records: etcd keeps no
index by name or by blob yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sfmesh.v1 import artifact_pb2, records_pb2

from services.api.artifacts import rules, views
from services.api.artifacts.store import ArtifactStore, StoredArtifact, StoredBlob
from services.api.namespaces.store import NamespaceStore
from services.api.visibility import SYSTEM, as_uuid, can_see
from services.common import errors
from services.common.instance_store import InstanceStore


class Trusts:
    """Namespace records read once per request, to answer `rules.trusts`."""

    def __init__(self, namespaces: NamespaceStore, caller: str) -> None:
        self._namespaces = namespaces
        self.caller = caller
        self._read: dict[str, records_pb2.NamespaceRecord | None] = {}

    async def trusted_by(self, owner: str) -> bool:
        """Whether namespace `owner` trusts the caller."""
        if self.caller in (owner, SYSTEM):
            return True
        if owner not in self._read:
            self._read[owner] = await self._namespaces.get(owner)
        return rules.trusts(owner, self._read[owner], self.caller)

    async def sees(self, record: records_pb2.ArtifactRecord) -> bool:
        """List visibility of an artifact."""
        return record.artifact.shared or await self.trusted_by(record.artifact.namespace)


class ArtifactLookup:
    """Resolves artifact refs and blob uuids for the caller."""

    def __init__(
        self, artifacts: ArtifactStore, namespaces: NamespaceStore, instances: InstanceStore
    ) -> None:
        self._artifacts = artifacts
        self._namespaces = namespaces
        self._instances = instances

    def trusts(self, caller: str) -> Trusts:
        """A fresh per-request trust reader."""
        return Trusts(self._namespaces, caller)

    async def visible(self, caller: str) -> list[StoredArtifact]:
        """The active artifacts the caller sees, in UUID order."""
        trusts = self.trusts(caller)
        return [
            stored
            async for stored in self._artifacts.all()
            if rules.is_active(stored.record) and await trusts.sees(stored.record)
        ]

    async def readable(self, ref: str, caller: str) -> StoredArtifact:
        """The artifact `ref` names, when the caller may read it."""
        trusts = self.trusts(caller)
        canonical = as_uuid(ref)
        if canonical is not None:
            stored = await self._artifacts.get(canonical)
            if stored is None or not await trusts.sees(stored.record):
                raise errors.NotFound("artifact not found")
            return stored
        matches = [
            stored
            async for stored in self._artifacts.all()
            if stored.record.artifact.name == ref
            and rules.is_active(stored.record)
            and await trusts.sees(stored.record)
        ]
        chosen = rules.pick_by_name([m.record for m in matches], ref, caller)
        return next(m for m in matches if m.record is chosen)

    async def managed(self, ref: str, caller: str) -> StoredArtifact:
        """The artifact `ref` names, when the caller may change it."""
        stored = await self.readable(ref, caller)
        if not await self.trusts(caller).trusted_by(stored.record.artifact.namespace):
            raise errors.NotFound("artifact not found")
        return stored

    async def view(
        self,
        record: records_pb2.ArtifactRecord,
        instances: Mapping[str, Sequence[str]] = views.NO_INSTANCES,
    ) -> artifact_pb2.Artifact:
        """The view of `record`, its blobs read now."""
        blobs = await self._artifacts.blobs(views.blobs_of([record]))
        return views.artifact_view(record, {u: s.record for u, s in blobs.items()}, instances)

    async def instances_using(self, caller: str) -> dict[str, list[str]]:
        """The live instances the caller sees, by each blob their disks use."""
        found: dict[str, list[str]] = defaultdict(list)
        async for stored in self._instances.all():
            instance = stored.record.instance
            if can_see(caller, instance.namespace):
                for blob_uuid in dict.fromkeys(views.using_blobs(instance)):
                    found[blob_uuid].append(instance.uuid)
        return found

    async def blob(self, uuid: str, caller: str, *, manage: bool = False) -> StoredBlob:
        """The blob `uuid`, when the caller reaches it (or, with `manage`,
        manages it); 404 `blob not found` otherwise."""
        canonical = as_uuid(uuid)
        stored = await self._artifacts.get_blob(canonical) if canonical else None
        if stored is None or not await self.reaches(stored.record, caller, manage=manage):
            raise errors.NotFound("blob not found")
        return stored

    async def reaches(
        self, record: records_pb2.BlobRecord, caller: str, *, manage: bool = False
    ) -> bool:
        """Whether the caller reaches (or manages) the blob of `record`."""
        if record.owner_namespace:
            return can_see(caller, record.owner_namespace)
        if caller == SYSTEM:
            return True
        blob_uuid = record.blob.uuid
        trusts = self.trusts(caller)
        async for stored in self._artifacts.all():
            artifact = stored.record
            if not rules.is_active(artifact) or blob_uuid not in views.blobs_of([artifact]):
                continue
            if await trusts.trusted_by(artifact.artifact.namespace) or (
                not manage and artifact.artifact.shared
            ):
                return True
        return blob_uuid in await self.instances_using(caller)
