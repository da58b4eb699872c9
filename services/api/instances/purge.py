"""Forgetting what has been gone long enough: deleted instances and networks
stay readable by UUID for a retention time (the client polls for
`deleted`), then their records are purged; expired idempotency keys go too.
Each sweep also finishes the deletes that may end but have not
(`deletion.py`): its follower's write failed, say."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sfmesh.v1 import network_service_pb2, records_pb2

from services.api.instances.deletion import Finisher, finishable
from services.api.instances.idempotency import IdempotencyKeys
from services.api.networks.nics import held_addresses
from services.api.networks.store import NetworkStore
from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import InstanceStore

log = logging.getLogger("sfmesh.api.purge")


def purgeable(record: records_pb2.InstanceRecord, now: float, retention: float) -> bool:
    """Whether a record has been deleted for longer than `retention` seconds. Pure."""
    return record.instance.state == states.DELETED and now - record.deleted_at >= retention


def network_purgeable(record: records_pb2.NetworkRecord, now: float, retention: float) -> bool:
    """Whether a network has been deleted for longer than `retention` seconds. Pure."""
    deleted = record.network.state == network_service_pb2.NETWORK_STATE_DELETED
    return deleted and now - record.deleted_at >= retention


async def purge_once(
    instances: InstanceStore,
    keys: IdempotencyKeys,
    networks: NetworkStore,
    finisher: Finisher,
    *,
    retention: float,
    now: float,
) -> int:
    """Finish the deletes that may end, and purge every instance and network
    deleted before `now - retention`; returns how many records went."""
    purged = 0
    async for stored in instances.all():
        if finishable(stored.record):
            with contextlib.suppress(errors.Aborted):  # kept changing: next sweep
                await finisher.finish(stored)
        elif purgeable(stored.record, now, retention):
            # The delete gave its addresses back, unless it stopped half-way;
            # the record stays until they are surely back (next round, else).
            released = await networks.release(held_addresses(stored.record.instance))
            if released.complete and await instances.remove(stored):
                purged += 1
    async for network in networks.all():
        if network_purgeable(network.record, now, retention) and await networks.remove(network):
            purged += 1
    await keys.forget_expired(now)
    return purged


async def purge_forever(
    instances: InstanceStore,
    keys: IdempotencyKeys,
    networks: NetworkStore,
    finisher: Finisher,
    *,
    retention: float,
    interval: float,
) -> None:
    """Purge every `interval` seconds; a failed sweep is retried at the next."""
    while True:
        try:
            purged = await purge_once(
                instances, keys, networks, finisher, retention=retention, now=time.time()
            )
            if purged:
                log.info("purged deleted records", extra={"fields": {"count": purged}})
        except Exception:
            log.exception("purge sweep failed; trying again at the next one")
        await asyncio.sleep(interval)
