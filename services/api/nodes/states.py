"""Every node's state, kept in memory from a snapshot of the node records
and an etcd watch from its revision (a compacted watch or an etcd outage
starts over from a fresh snapshot), so that instance views can say the state
of their node without a read per instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.store import Store, kind_prefix

log = logging.getLogger("sfmesh.api.nodes")

RESYNC_DELAY = 1.0


class NodeStates:
    """Node name -> state, as last seen."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._states: dict[str, int] = {}

    def state_of(self, node: str) -> int | None:
        """The state of node `node`; None when it is unknown."""
        return self._states.get(node)

    async def run(self) -> None:
        """Follow the node records until cancelled."""
        prefix = kind_prefix("node")
        while True:
            try:
                snapshot = await self._store.snapshot(prefix)
                self._states = {
                    record.name: record.state
                    for record in (
                        records_pb2.NodeRecord.FromString(item.value) for item in snapshot.items
                    )
                }
                changes = self._store.watch_prefix(prefix, start_revision=snapshot.revision + 1)
                async with contextlib.aclosing(changes):
                    async for change in changes:
                        name = change.key[len(prefix) :].decode()
                        if change.value is None:
                            self._states.pop(name, None)
                        else:
                            self._states[name] = records_pb2.NodeRecord.FromString(
                                change.value
                            ).state
            except errors.SfmeshError as exc:  # compaction or etcd unreachable
                log.warning("node watch restarting: %s", exc.message)
                await asyncio.sleep(RESYNC_DELAY)
