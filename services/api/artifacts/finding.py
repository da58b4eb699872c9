"""Find-or-create by source URL (reference §2.6): the matchable artifact of
that type and source visible to the target namespace, or a plan to write a
new one in the target namespace together with its source key, so that
concurrent creates of one source never make two (`store.py`).

The plan is written by the caller, alone (`POST /artifacts`, labels) or in
the transaction of an instance (`POST /instances`), so a refused create
leaves no artifact.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass

from sfmesh.v1 import records_pb2

from services.api.artifacts import rules
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ArtifactStore, StoredArtifact, artifact_put
from services.common.store import Put


@dataclass(frozen=True)
class Found:
    """An artifact found, or one to create."""

    existing: StoredArtifact | None
    """The artifact found; None when `new` is to be written."""
    new: records_pb2.ArtifactRecord | None = None
    """The new artifact's record, when none was found."""
    claim: Put | None = None
    """The write of the new artifact's source key."""

    @property
    def uuid(self) -> str:
        """The artifact's uuid, found or new."""
        record = self.existing.record if self.existing else self.new
        assert record is not None  # one of the two is always set
        return record.artifact.uuid

    @property
    def record(self) -> records_pb2.ArtifactRecord:
        """The artifact's record, found or new."""
        record = self.existing.record if self.existing else self.new
        assert record is not None
        return record

    def writes(self) -> list[Put]:
        """What creating the new artifact writes (nothing when found)."""
        if self.new is None or self.claim is None:
            return []
        return [artifact_put(self.new, 0), self.claim]


class Finder:
    """Finds artifacts by source, or plans them."""

    def __init__(self, artifacts: ArtifactStore, lookup: ArtifactLookup) -> None:
        self._artifacts = artifacts
        self._lookup = lookup

    async def find(self, target: str, artifact_type: int, source_url: str) -> StoredArtifact | None:
        """The artifact of that type and source a create in `target` uses."""
        trusts = self._lookup.trusts(target)
        matches = [
            stored
            async for stored in self._artifacts.all()
            if stored.record.artifact.artifact_type == artifact_type
            and stored.record.artifact.source_url == source_url
            and stored.record.artifact.state in rules.MATCHABLE
            and await trusts.sees(stored.record)
        ]
        chosen = rules.pick_by_source([m.record for m in matches], source_url, target)
        return next((m for m in matches if m.record is chosen), None)

    async def find_or_plan(
        self,
        target: str,
        artifact_type: int,
        source_url: str,
        make: Callable[[str], records_pb2.ArtifactRecord],
    ) -> Found:
        """The artifact found, or `make(uuid)` to be written with its source
        key (the caller writes `Found.writes()` and retries on a clash)."""
        existing = await self.find(target, artifact_type, source_url)
        if existing is not None:
            return Found(existing)
        new_uuid = str(uuid_module.uuid4())
        claim, named = await self._artifacts.source_claim(
            target, artifact_type, source_url, new_uuid
        )
        if named:
            holder = await self._artifacts.get(named)
            if holder is not None and holder.record.artifact.state in rules.MATCHABLE:
                return Found(holder)  # made between the search and the claim
        return Found(None, make(new_uuid), claim)
