"""Abandoned uploads (reference §4, §11 Q21): an upload no byte reached for
longer than `idle` seconds (24 h by default, what Shaken Fist's docs say;
its code waits 7 days from creation) is forgotten: its record removed by
compare-and-swap (an append that landed meanwhile keeps it), then its file
discarded on its node. A node that cannot be reached keeps the file until
its own cleaner removes files no record names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.transfers.store import UploadStore
from services.api.transfers.uploads import UPLOAD
from services.common import errors

log = logging.getLogger("sfmesh.api.uploads")


def is_abandoned(updated_at: float, now: float, idle: float) -> bool:
    """Whether an upload last touched at `updated_at` is abandoned. Pure."""
    return now - updated_at > idle


async def sweep(uploads: UploadStore, agents: NodeAgents, events: Events, idle: float) -> int:
    """Forget every abandoned upload once; how many."""
    now, swept = time.time(), 0
    async for stored in uploads.all():
        upload = stored.record.upload
        if not is_abandoned(stored.record.updated_at, now, idle):
            continue
        if not await uploads.delete(stored):
            continue  # touched meanwhile: not abandoned
        swept += 1
        events.audit(upload.uuid, "abandoned upload removed", {"idle": idle}, kind=UPLOAD)
        with contextlib.suppress(errors.SfmeshError):
            await agents.discard_upload(upload.node, upload.uuid)
    return swept


async def sweep_forever(
    uploads: UploadStore, agents: NodeAgents, events: Events, *, idle: float, interval: float
) -> None:
    """`sweep` every `interval` seconds until cancelled."""
    while True:
        try:
            swept = await sweep(uploads, agents, events, idle)
            if swept:
                log.info("removed %d abandoned uploads", swept)
        except errors.SfmeshError as exc:
            log.warning("abandoned uploads not swept: %s", exc.message)
        await asyncio.sleep(interval)
