"""Forgetting what has been gone long enough: deleted instances stay readable
by UUID for a retention time (the client polls for `deleted`), then their
records are purged; expired idempotency keys go too."""

from __future__ import annotations

import asyncio
import logging
import time

from sfmesh.v1 import records_pb2

from services.api.idempotency import IdempotencyKeys
from services.common import instance_states as states
from services.common.instance_store import InstanceStore

log = logging.getLogger("sfmesh.api.purge")


def purgeable(record: records_pb2.InstanceRecord, now: float, retention: float) -> bool:
    """Whether a record has been deleted for longer than `retention` seconds. Pure."""
    return record.instance.state == states.DELETED and now - record.deleted_at >= retention


async def purge_once(
    instances: InstanceStore, keys: IdempotencyKeys, *, retention: float, now: float
) -> int:
    """Purge every instance deleted before `now - retention`; returns how many."""
    purged = 0
    async for stored in instances.all():
        if purgeable(stored.record, now, retention) and await instances.remove(stored):
            purged += 1
    await keys.forget_expired(now)
    return purged


async def purge_forever(
    instances: InstanceStore, keys: IdempotencyKeys, *, retention: float, interval: float
) -> None:
    """Purge every `interval` seconds; a failed sweep is retried at the next."""
    while True:
        try:
            purged = await purge_once(instances, keys, retention=retention, now=time.time())
            if purged:
                log.info("purged deleted instances", extra={"fields": {"count": purged}})
        except Exception:
            log.exception("purge sweep failed; trying again at the next one")
        await asyncio.sleep(interval)
