"""Cache requests: artifacts whose `fetch_node` names this node
(`POST /artifacts` asks one node to fetch an image's source). Read from a
snapshot, then an etcd watch from its revision; a watch that falls behind
etcd's compaction, or an etcd outage, starts over from a fresh snapshot, so
no request is missed. Each request is answered by
``DiskImages.answer_cache_request``, which records the outcome and clears
the request in one transaction; a request still set after a crash is seen
again at start-up and fetched again or found done. One task per artifact; a
change seen while it runs makes it run again; one that failed on etcd is
retried after RETRY_SECONDS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from services.common import errors
from services.node_agent.blob_records import BlobRecords
from services.node_agent.images import ImageError

log = logging.getLogger("sfmesh.node_agent.cache_requests")

RESYNC_DELAY = 1.0
"""Seconds before a broken watch starts over."""
RETRY_SECONDS = 5.0
"""Seconds before a request whose answer failed on etcd is tried again."""


class CacheRequests:
    """Answers the cache requests addressed to node `node` with `answer(uuid)`."""

    def __init__(
        self, records: BlobRecords, node: str, answer: Callable[[str], Awaitable[None]]
    ) -> None:
        self._records = records
        self._node = node
        self._answer = answer
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    async def run(self) -> None:
        """Follow etcd until cancelled."""
        try:
            while True:
                try:
                    found, revision = await self._records.artifact_snapshot()
                    for record in found:
                        if record.fetch_node == self._node:
                            self._start(record.artifact.uuid)
                    async for uuid, changed in self._records.artifact_changes(after=revision):
                        if changed is not None and changed.fetch_node == self._node:
                            self._start(uuid)
                except errors.SfmeshError as exc:  # compaction or etcd unreachable
                    log.warning("artifact watch restarting: %s", exc.message)
                    await asyncio.sleep(RESYNC_DELAY)
        finally:
            for task in list(self._running.values()):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _start(self, uuid: str) -> None:
        if uuid in self._running:
            self._again.add(uuid)
            return
        self._running[uuid] = asyncio.create_task(self._answer_until_settled(uuid))

    async def _answer_until_settled(self, uuid: str) -> None:
        try:
            while True:
                self._again.discard(uuid)
                try:
                    await self._answer(uuid)
                except ImageError as exc:  # recorded on the artifact
                    log.info("cache request of artifact %s failed: %s", uuid, exc)
                except errors.SfmeshError as exc:
                    log.warning("cache request of artifact %s: %s", uuid, exc.message)
                    await asyncio.sleep(RETRY_SECONDS)
                    self._again.add(uuid)
                if uuid not in self._again:
                    return
        finally:
            self._running.pop(uuid, None)
