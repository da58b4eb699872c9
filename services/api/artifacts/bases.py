"""Disk bases at `POST /instances` (reference §2.8, with §11 Q7): what each
requested disk's content comes from, decided before anything is written;
and the blob an `nvram_template` names (§4.7, with §11 Q13: `sf://blob/`
uses that blob), which the instance holds a reference on from its create.

- `label:`, `sf://label/`, `sf://upload/` and `sf://snapshot/` bases resolve
  to the newest version's blob of their artifact, which must be `created`
  and visible to both the caller and the instance's namespace (404
  otherwise, with Shaken Fist's messages); `sf://blob/` must name a created
  blob both reach. The disk's source is then that blob.
- An image URL or shorthand is the image artifact of that source found for
  the instance's namespace (a shared system one matches), or a new one
  planned there: its writes go in the instance's own transaction, so it
  shows in `GET /artifacts` at once and a refused create leaves none. The
  node agent fetches it; the disk's source is the artifact.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sfmesh.v1 import artifact_pb2, instance_pb2, records_pb2

from services.api.artifacts import rules, sources
from services.api.artifacts.finding import Finder, Found
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.sources import Kind, Source
from services.api.artifacts.store import ArtifactStore, blob_put
from services.common import artifact_versions, errors
from services.common.store import Put
from services.common.wire import wire_name

IMAGE = artifact_pb2.ARTIFACT_TYPE_IMAGE
ARTIFACT_KINDS = {
    Kind.LABEL: "label",
    Kind.SF_LABEL: "label",
    Kind.SF_UPLOAD: "artifact",
    Kind.SF_SNAPSHOT: "snapshot",
}
"""What each artifact-backed kind of base is called in its "Could not
resolve ... to a blob" message."""


@dataclass(frozen=True)
class Resolved:
    """The disks' sources, in `disk_spec` order, and what creating the
    instance must also write."""

    sources: list[records_pb2.DiskSource]
    writes: list[Put] = field(default_factory=list)
    """New image artifacts and their source keys."""
    created: list[str] = field(default_factory=list)
    """The uuids of those new artifacts."""


@dataclass(frozen=True)
class NvramTemplate:
    """The blob an instance's `nvram_template` resolved to, and the write
    that gives it the instance's reference (compared on the blob's revision,
    so a blob deleted meanwhile fails the create's transaction)."""

    blob_uuid: str
    write: Put


class Bases:
    """Resolves disk bases and NVRAM templates for instance creates."""

    def __init__(self, artifacts: ArtifactStore, lookup: ArtifactLookup, finder: Finder) -> None:
        self._artifacts = artifacts
        self._lookup = lookup
        self._finder = finder

    async def resolve(
        self, disks: Sequence[instance_pb2.DiskSpec], caller: str, target: str
    ) -> Resolved:
        """The source of every disk of a create by `caller` in `target`."""
        resolved = Resolved([])
        planned: dict[str, Found] = {}
        for index, disk in enumerate(disks):
            source = sources.parse_base(
                f"disk[{index}].base", disk.base if disk.HasField("base") else ""
            )
            if source.kind == Kind.BLANK:
                resolved.sources.append(records_pb2.DiskSource())
            elif source.kind == Kind.IMAGE:
                found = planned.get(source.text)
                if found is None:
                    found = planned[source.text] = await self._image(source.text, target)
                    resolved.writes.extend(found.writes())
                    if found.new is not None:
                        resolved.created.append(found.uuid)
                resolved.sources.append(records_pb2.DiskSource(artifact_uuid=found.uuid))
            elif source.kind == Kind.SF_BLOB:
                blob_uuid = await self._blob(source.uuid, caller, target)
                resolved.sources.append(records_pb2.DiskSource(blob_uuid=blob_uuid))
            else:
                blob_uuid = await self._artifact_blob(source, caller, target)
                resolved.sources.append(records_pb2.DiskSource(blob_uuid=blob_uuid))
        return resolved

    async def nvram_template(self, text: str, caller: str, target: str) -> NvramTemplate:
        """The blob an `nvram_template` names (`sources.parse_nvram_template`:
        a label's newest blob, or a blob), `created` and reached by both the
        caller and the target (404 otherwise, as for disk bases), with the
        write adding the instance's reference (§9.3)."""
        source = sources.parse_nvram_template("nvram_template", text)
        if source.kind == Kind.SF_BLOB:
            blob_uuid = await self._blob(source.uuid, caller, target)
        else:
            blob_uuid = await self._artifact_blob(source, caller, target)
        stored = await self._artifacts.get_blob(blob_uuid)
        if stored is None or stored.record.blob.state != artifact_pb2.BLOB_STATE_CREATED:
            raise errors.NotFound("blob not found")
        held = records_pb2.BlobRecord()
        held.CopyFrom(stored.record)
        artifact_versions.change_references(held, 1, time.time())
        return NvramTemplate(blob_uuid, blob_put(stored, held))

    async def _image(self, url: str, target: str) -> Found:
        now = time.time()
        return await self._finder.find_or_plan(
            target,
            IMAGE,
            url,
            lambda uuid: rules.new_record(
                uuid=uuid,
                artifact_type=IMAGE,
                source_url=url,
                namespace=target,
                name=sources.name_of(url),
                now=now,
            ),
        )

    async def _artifact_blob(self, source: Source, caller: str, target: str) -> str:
        """The newest blob of the artifact a label:, sf://label/,
        sf://upload/ or sf://snapshot/ base names."""
        record = await self._artifact(source, caller, target)
        state = record.artifact.state
        if state != artifact_pb2.ARTIFACT_STATE_CREATED:
            name = wire_name(artifact_pb2.ArtifactState.DESCRIPTOR, state)
            raise errors.NotFound(f"artifact not ready (state={name})", reason="ARTIFACT_NOT_READY")
        what = ARTIFACT_KINDS[source.kind]
        subject = f"label {source.name or source.text}" if what == "label" else what
        unresolved = errors.NotFound(
            f"Could not resolve {subject} to a blob", reason="UNRESOLVED_BASE"
        )
        if not record.versions:
            raise unresolved
        newest = await self._artifacts.get_blob(record.versions[-1].blob_uuid)
        if newest is None or newest.record.blob.state != artifact_pb2.BLOB_STATE_CREATED:
            raise unresolved
        return newest.record.blob.uuid

    async def _artifact(
        self, source: Source, caller: str, target: str
    ) -> records_pb2.ArtifactRecord:
        """The artifact a base names, seen by the caller and the target."""
        if source.kind == Kind.SF_SNAPSHOT:
            stored = await self._artifacts.get(source.uuid)
            candidates = [] if stored is None else [stored.record]
        else:
            if source.kind == Kind.LABEL:
                wanted_type, url = (
                    artifact_pb2.ARTIFACT_TYPE_LABEL,
                    sources.label_url(caller, source.name),
                )
            elif source.kind == Kind.SF_LABEL:
                wanted_type, url = artifact_pb2.ARTIFACT_TYPE_LABEL, source.text
            else:
                wanted_type, url = IMAGE, source.text
            candidates = [
                stored.record
                async for stored in self._artifacts.all()
                if stored.record.artifact.artifact_type == wanted_type
                and stored.record.artifact.source_url == url
                and rules.is_active(stored.record)
            ]
        by_caller, by_target = self._lookup.trusts(caller), self._lookup.trusts(target)
        seen = [
            record
            for record in candidates
            if record.artifact.state != artifact_pb2.ARTIFACT_STATE_DELETED
            and await by_caller.sees(record)
            and await by_target.sees(record)
        ]
        if not seen:
            raise errors.NotFound("artifact not found")
        created = [r for r in seen if r.artifact.state == artifact_pb2.ARTIFACT_STATE_CREATED]
        return (created or seen)[0]

    async def _blob(self, blob_uuid: str, caller: str, target: str) -> str:
        """A created blob both the caller and the target reach."""
        stored = await self._lookup.blob(blob_uuid, caller)
        if not await self._lookup.reaches(stored.record, target):
            raise errors.NotFound("blob not found")
        state = stored.record.blob.state
        if state != artifact_pb2.BLOB_STATE_CREATED:
            name = wire_name(artifact_pb2.BlobState.DESCRIPTOR, state)
            raise errors.NotFound(f"blob not ready (state={name})", reason="BLOB_NOT_READY")
        return stored.record.blob.uuid
