"""How an instance ends, so that `deleted` can be trusted the moment it shows.

DELETE moves a placed instance to `delete-wait`. The node agent hosting it
destroys and undefines its domain, removes its disks and its share of
networks, then records that on the instance (`torn_down_at`). The api then
writes `deleted` and gives back the addresses, MAC keys and floating
addresses the instance held, and one reference per disk on the blob it was
built from, in one etcd transaction: once `deleted` is
visible, nothing of the instance is left on its node and everything it held
is free. An instance never placed has nothing to tear down and ends at once.

The api gives reservations back, never a node agent, because the api owns
network state (and the networks waiting in `delete-wait` for their last
instance). It learns of teardowns by following instance records;
`purge.py`'s sweep finishes whatever that missed (a failed write, say), and
the follower's first snapshot finishes what was torn down while the api was
down. Every release is idempotent: a reservation goes only while it still
names its holder.

The events of `deleted` (and of DELETE's `delete-wait`, in the servicer) are
written with it, as an outbox entry (`clients/outbox.py`): no crash after
the transaction loses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sfmesh.v1 import instance_pb2, records_pb2

from services.api.artifacts.store import ArtifactStore, deltas_of
from services.api.clients.events import NETWORK, Events
from services.api.clients.outbox import Outbox
from services.api.instances.history import record_state
from services.api.networks.nics import held_addresses
from services.api.networks.store import NetworkStore
from services.common import errors
from services.common import instance_states as states
from services.common.instance_follower import InstanceFollower
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.store import Operation

log = logging.getLogger("sfmesh.api.deletion")

ATTEMPTS = 8
"""Tries of the final transaction when the record or a reservation changed
under it; the purge's sweep tries again later."""


def ask_deletion(record: records_pb2.InstanceRecord) -> None:
    """DELETE's change to a placed instance: `delete-wait`, until the node
    agent hosting it has torn it down. Error states wait too, since their
    domain may have been left behind. A second delete rewrites `delete-wait`
    unchanged, which makes the node agent look again. Pure."""
    if record.instance.state != states.DELETE_WAIT:
        check_deletable(record.instance, states.DELETE_WAIT)
        record.instance.state = states.DELETE_WAIT


def check_deletable(instance: instance_pb2.Instance, target: int) -> None:
    """DELETE's refusals on the way to `target`: 404 when the instance is
    already deleted, 409 when its state may not move there. Pure."""
    if instance.state == states.DELETED:
        raise errors.NotFound("instance not found")
    if not states.may_transition(instance.state, target):
        raise errors.Conflict(f"instance {instance.uuid} cannot be deleted from its current state")


def finishable(
    record: records_pb2.InstanceRecord, *, asking: bool = False, orphaned: bool = False
) -> bool:
    """Whether an instance's delete may end now: it waits in `delete-wait`
    and the node agent hosting it has torn it down; or it was never placed,
    and this is the delete request itself (`asking`); or its node was
    deleted (`orphaned`: nothing there will be torn down), from any state
    but `deleted`. Pure."""
    instance = record.instance
    if orphaned:
        return instance.state != states.DELETED
    if not instance.node:
        waits = asking or instance.state == states.DELETE_WAIT
        return waits and states.may_transition(instance.state, states.DELETED)
    return instance.state == states.DELETE_WAIT and record.torn_down_at > 0


def disk_blobs(instance: instance_pb2.Instance) -> list[str]:
    """The blobs an instance's laid-out disks hold, once per disk: the node
    agent added a reference per disk when it wrote `created`, and `deleted`
    lets go of each (by N, not 1: §11 Q5). Pure."""
    return [disk.blob_uuid for disk in instance.disks if disk.HasField("blob_uuid")]


def held_blobs(record: records_pb2.InstanceRecord) -> list[str]:
    """Every reference an instance holds, once each: its laid-out disks'
    (`disk_blobs`) and its NVRAM template's, held since its create (§9.3).
    Pure."""
    template = [record.nvram_blob_uuid] if record.nvram_blob_uuid else []
    return [*disk_blobs(record.instance), *template]


def mark_deleted(record: records_pb2.InstanceRecord, now: float) -> None:
    """What `deleted` means in a record: powered off, its NICs deleted, and
    when. Pure."""
    record.instance.state = states.DELETED
    record.instance.power_state = instance_pb2.POWER_STATE_OFF
    for nic in record.instance.interfaces:
        nic.state = instance_pb2.INTERFACE_STATE_DELETED
    record.deleted_at = now


class Finisher:
    """Ends instances whose delete may finish (`finishable`)."""

    def __init__(
        self,
        instances: InstanceStore,
        networks: NetworkStore,
        events: Events,
        artifacts: ArtifactStore,
        outbox: Outbox,
    ) -> None:
        self._instances = instances
        self._networks = networks
        self._artifacts = artifacts
        self._events = events
        self._outbox = outbox
        self._waiting = InstanceFollower(
            instances, lambda instance: instance.state == states.DELETE_WAIT, self._changed
        )
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def finish(
        self,
        stored: StoredInstance,
        *,
        asking: bool = False,
        audit: str = "",
        orphaned: bool = False,
    ) -> bool:
        """Write `deleted` and give back what the instance holds, in one
        transaction, if it may end now (`finishable`, `orphaned` as there);
        whether this call ended it (False when another writer did, or it may
        not, or the record is gone). When `asking` (the delete request
        itself), a record that may not end is refused instead: 404 when
        already deleted, 409 when its state may not move to `deleted`.
        `audit`, when given, is recorded just before its `deleted`."""
        uuid = stored.record.instance.uuid
        recorded = self._outbox.hold()
        if audit:
            recorded.events.audit(uuid, audit)
        record_state(recorded.events, uuid, states.DELETED)
        for _ in range(ATTEMPTS):
            if not finishable(stored.record, asking=asking, orphaned=orphaned):
                if asking:
                    check_deletable(stored.record.instance, states.DELETED)
                return False
            record = records_pb2.InstanceRecord()
            record.CopyFrom(stored.record)
            now = time.time()
            mark_deleted(record, now)
            held = held_addresses(record.instance)
            releases: list[Operation] = [*await self._networks.releases(held)]
            released_blobs = deltas_of(released=held_blobs(stored.record))
            releases += await self._artifacts.reference_writes(released_blobs, now=now)
            if await self._instances.replace(stored, record, *releases, recorded.entry()):
                break
            fresh = await self._instances.get(uuid)
            if fresh is None:
                return False
            stored = fresh
        else:
            raise errors.Aborted(f"instance {uuid} kept changing while its delete finished")
        self._outbox.send(recorded)
        for network_uuid in await self._networks.finish_unused(held):
            self._events.attribute_set(network_uuid, "state", "deleted", kind=NETWORK)
        return True

    async def run(self) -> None:
        """Follow instances in `delete-wait` and end each once torn down,
        until cancelled."""
        try:
            await self._waiting.run()
        finally:
            for task in list(self._tasks):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _changed(self, uuid: str) -> None:
        stored = self._waiting.get(uuid)
        if stored is None or uuid in self._busy or not finishable(stored.record):
            return
        self._busy.add(uuid)
        task = asyncio.create_task(self._finish_noted(stored), name=f"finish-delete-{uuid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_noted(self, stored: StoredInstance) -> None:
        uuid = stored.record.instance.uuid
        try:
            await self.finish(stored)
        except Exception:  # etcd away, say: the purge's next sweep tries again
            log.exception("finishing a delete failed", extra={"fields": {"instance": uuid}})
        finally:
            self._busy.discard(uuid)
