"""A live, in-memory copy of some instance records: read from a snapshot,
then kept current by an etcd watch from the snapshot's revision. A watch
that falls behind etcd's compaction, or an etcd outage, starts over from a
fresh snapshot, so no change is ever missed. Node agents follow the
instances placed on them; the scheduler follows every placed instance."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sfmesh.v1 import instance_pb2

from services.common import errors
from services.common.instance_store import InstanceStore, StoredInstance

log = logging.getLogger("sfmesh.instance_follower")

RESYNC_DELAY = 1.0


def _ignore(uuid: str) -> None:
    pass


class InstanceFollower:
    """The records `keep` selects, and a callback for each that changes
    (including one that stops being selected)."""

    def __init__(
        self,
        instances: InstanceStore,
        keep: Callable[[instance_pb2.Instance], bool],
        changed: Callable[[str], None] = _ignore,
    ) -> None:
        self._instances = instances
        self._keep = keep
        self._changed = changed
        self._records: dict[str, StoredInstance] = {}
        self.synced = asyncio.Event()
        """Set once the first snapshot is in."""

    def get(self, uuid: str) -> StoredInstance | None:
        """The record as last seen; None once it is gone or no longer kept."""
        return self._records.get(uuid)

    def instances(self) -> list[instance_pb2.Instance]:
        """Every kept instance, as last seen."""
        return [stored.record.instance for stored in self._records.values()]

    async def run(self) -> None:
        """Follow etcd until cancelled."""
        while True:
            try:
                revision = await self._resync()
                async for uuid, stored in self._instances.watch(after=revision):
                    self._apply(uuid, stored)
            except errors.SfmeshError as exc:  # compaction or etcd unreachable
                log.warning("instance watch restarting: %s", exc.message)
                await asyncio.sleep(RESYNC_DELAY)

    async def _resync(self) -> int:
        records, revision = await self._instances.snapshot()
        fresh = {
            stored.record.instance.uuid: stored
            for stored in records
            if self._keep(stored.record.instance)
        }
        known = set(self._records) | set(fresh)
        self._records = fresh
        for uuid in sorted(known):
            self._changed(uuid)
        self.synced.set()
        return revision

    def _apply(self, uuid: str, stored: StoredInstance | None) -> None:
        if stored is not None and self._keep(stored.record.instance):
            self._records[uuid] = stored
        elif self._records.pop(uuid, None) is None:
            return  # not kept, before or after
        self._changed(uuid)
