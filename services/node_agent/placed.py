"""The instances placed on this node, as etcd holds them: read from a snapshot
at start, then kept current by an etcd watch from the snapshot's revision. A
watch that falls behind etcd's compaction, or an etcd outage, starts over from
a fresh snapshot, so no change is ever missed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sfmesh.v1 import instance_pb2

from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import InstanceStore, StoredInstance

log = logging.getLogger("sfmesh.node_agent")

RESYNC_DELAY = 1.0


class PlacedInstances:
    """This node's instance records, and a callback for each that changes."""

    def __init__(self, instances: InstanceStore, node: str, changed: Callable[[str], None]) -> None:
        self._instances = instances
        self._node = node
        self._changed = changed
        self._records: dict[str, StoredInstance] = {}

    def get(self, uuid: str) -> StoredInstance | None:
        """The record as last seen; None once it is gone or moved away."""
        return self._records.get(uuid)

    def hosted(self) -> list[instance_pb2.Instance]:
        """Instances placed here and not deleted: what this node answers for."""
        return [
            stored.record.instance
            for stored in self._records.values()
            if stored.record.instance.state != states.DELETED
        ]

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
            if stored.record.instance.node == self._node
        }
        known = set(self._records) | set(fresh)
        self._records = fresh
        for uuid in sorted(known):
            self._changed(uuid)
        return revision

    def _apply(self, uuid: str, stored: StoredInstance | None) -> None:
        if stored is not None and stored.record.instance.node == self._node:
            self._records[uuid] = stored
        elif self._records.pop(uuid, None) is None:
            return  # not ours, before or after
        self._changed(uuid)
