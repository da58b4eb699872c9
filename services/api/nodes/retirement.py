"""What follows a node's deletion (reference §7): each instance still live on
it is deleted in etcd only, its addresses, MAC keys and floating addresses
given back and its blob references let go of, by the same transaction an
ordinary delete ends with (`instances/deletion.py`, `orphaned`); and the
node is dropped from every blob's locations, so the node agents' blob care
copies those blobs elsewhere. The node itself is not contacted: a domain
there keeps running until its agent (if it ever returns) sees the records
deleted and tears it down.

The api does it, in the delete request itself, since it owns the releases
and a node holds few instances; and a sweep does it again for every deleted
node not yet retired, so a request cut short (the api killed midway, etcd
away) is finished by the next sweep of any api replica. Every step is one
idempotent transaction, so doing one twice is harmless. The sweep marks a
node `retired_at` once it found nothing left to do and no create can still
land on the node (`rules.settled`), and never looks at it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sfmesh.v1 import records_pb2

from services.api.artifacts.store import ArtifactStore
from services.api.instances.deletion import Finisher
from services.api.nodes import rules
from services.api.nodes.store import NodeStore
from services.common import errors
from services.common.instance_store import InstanceStore

log = logging.getLogger("sfmesh.api.nodes")


class Retirement:
    """Finishes the deletion of nodes."""

    def __init__(
        self,
        nodes: NodeStore,
        instances: InstanceStore,
        finisher: Finisher,
        artifacts: ArtifactStore,
    ) -> None:
        self._nodes = nodes
        self._instances = instances
        self._finisher = finisher
        self._artifacts = artifacts

    async def retire(self, node: str) -> int:
        """Delete what deleted node `node` still holds; how many instances
        and blob locations this call changed."""
        changed = 0
        async for stored in self._instances.all():
            if rules.left_on(stored.record.instance, node):
                audit = f"deleted with its node {node}"
                with contextlib.suppress(errors.Aborted):  # kept changing: next sweep
                    if await self._finisher.finish(stored, audit=audit, orphaned=True):
                        changed += 1
        async for blob in self._artifacts.all_blobs():
            if node in blob.record.blob.locations:
                with contextlib.suppress(errors.NotFound):
                    await self._artifacts.update_blob(
                        blob, lambda record: rules.without_location(record, node)
                    )
                    changed += 1
        return changed

    async def sweep(self, now: float) -> None:
        """Retire every deleted node not retired yet; mark those with nothing
        left that no create can still reach."""
        async for stored in self._nodes.all():
            if not rules.unretired(stored.record):
                continue
            name = stored.record.name
            changed = await self.retire(name)
            if changed:
                log.info("finished a node's deletion", extra={"fields": {"node": name}})
            elif rules.settled(stored.record, now):
                await self._nodes.update(stored, lambda record: _retired(record, now))

    async def sweep_forever(self, interval: float) -> None:
        """Sweep every `interval` seconds; a failed sweep is retried at the next."""
        while True:
            try:
                await self.sweep(time.time())
            except Exception:
                log.exception("node retirement sweep failed; trying again at the next one")
            await asyncio.sleep(interval)


def _retired(record: records_pb2.NodeRecord, now: float) -> None:
    record.retired_at = now
