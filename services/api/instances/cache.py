"""A live copy of every instance record, so that `GET /instances/{uuid}`,
the call clients poll, costs no etcd round trip.

The copy is a snapshot kept current by `Store.watch_current`. It answers
only while it can be trusted, and says `UNSURE` otherwise, so the caller
reads etcd as before:

- **live**: its watch runs, and etcd answered one of the watch's progress
  requests asked at most `MAX_AGE` ago. A change made elsewhere (a node
  agent's state) reaches a live watch within milliseconds; a frozen or
  unreachable etcd stops the copy answering within `MAX_AGE`.
- **caught up with this api**: it has applied every instance revision this
  api wrote or read (`Store.revision_seen`), so a caller reads its own writes
  at once and never an older record than this api answered before.
- **never a false 404**: an instance it does not hold may have been
  created a moment ago through another api replica (the gateway balances a
  client's create and its next read over them), so a miss is read from etcd.
- **small**: records over `RECORD_BYTES` (metadata-heavy ones) are not kept;
  they are read from etcd, which bounds the copy's memory.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time

from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.instance_store import StoredInstance
from services.common.store import Change, Store, kind_prefix

log = logging.getLogger("sfmesh.api.instance_cache")

PROGRESS_EVERY = 0.1
"""Seconds between the watch's progress requests."""
MAX_AGE = 0.5
"""The copy answers only while etcd answered a progress request asked at
most this many seconds ago."""
RECORD_BYTES = 16 * 1024
"""Records larger than this are read from etcd, not kept."""
RESYNC_DELAY = 1.0
"""Seconds before a broken watch starts again from a fresh snapshot."""
_PREFIX = kind_prefix("instance")
_KIND = "instance"


class Unsure(enum.Enum):
    """The copy cannot answer now: read etcd."""

    UNSURE = enum.auto()


UNSURE = Unsure.UNSURE


class InstanceCache:
    """Every instance record up to `RECORD_BYTES`, as etcd last told."""

    def __init__(self, store: Store, *, every: float = PROGRESS_EVERY, max_age: float = MAX_AGE):
        self._store = store
        self._every = every
        self._max_age = max_age
        self._records: dict[str, tuple[bytes, int] | None] = {}
        """uuid -> (record, mod_revision); None for a record too large to keep."""
        self._applied = 0
        self._confirmed = -math.inf

    def get(self, uuid: str) -> StoredInstance | Unsure:
        """The record of instance `uuid`, or `UNSURE` when the copy may not
        answer (read etcd then): also when it has none, for another api
        replica may have created it a moment ago."""
        if time.monotonic() - self._confirmed > self._max_age:
            return UNSURE
        if self._applied < self._store.revision_seen(_KIND):
            return UNSURE
        kept = self._records.get(uuid)
        if kept is None:
            return UNSURE
        raw, mod_revision = kept
        return StoredInstance(records_pb2.InstanceRecord.FromString(raw), mod_revision)

    async def run(self) -> None:
        """Keep the copy until cancelled; after a failure, start again from a
        fresh snapshot (not answering meanwhile)."""
        while True:
            try:
                await self._follow()
            except errors.SfmeshError as exc:  # etcd unreachable, or compaction
                log.warning("instance copy restarting: %s", exc.message)
            finally:
                self._confirmed = -math.inf
            await asyncio.sleep(RESYNC_DELAY)

    async def _follow(self) -> None:
        asked_at = time.monotonic()
        snapshot = await self._store.snapshot(_PREFIX)
        self._records = {}
        for item in snapshot.items:
            self._keep(item.key, item.value, item.mod_revision)
        self._applied = snapshot.revision
        self._confirmed = asked_at  # a linearizable read asked then
        watch = self._store.watch_current(
            _PREFIX, start_revision=snapshot.revision + 1, every=self._every
        )
        async for delivered in watch:
            for change in delivered.changes:
                self._apply(change)
            if delivered.asked_at is not None:
                self._confirmed = delivered.asked_at

    def _apply(self, change: Change) -> None:
        if change.value is None:
            self._records.pop(change.key[len(_PREFIX) :].decode(), None)
        else:
            self._keep(change.key, change.value, change.mod_revision)
        self._applied = max(self._applied, change.mod_revision)

    def _keep(self, key: bytes, value: bytes, mod_revision: int) -> None:
        uuid = key[len(_PREFIX) :].decode()
        self._records[uuid] = (value, mod_revision) if len(value) <= RECORD_BYTES else None
