"""Blobs left `initial` by a copy that will never end: a snapshot reserved
for a node whose agent then died or restarted (its copies are tasks of the
process, lost with it), or was never asked (the api stopped between the
reservation and the request). The reservation names that node
(`maker_node`).

Each pass of ``blob_care.py`` hands over the blob records it read; those
``blob_rules.abandoned`` condemns are marked `error` by compare-and-swap,
through ``reservations.fail`` (the change a failed snapshot records),
judged again on the record as it is when written. A blob event, `abandoned
blob marked error` (`reason`, `maker_node`, `node`), says why. No version
refers to an `initial` blob (a snapshot's version is added only by the
write that makes its blob `created`); the snapshot artifact becomes `error`
in the same transaction when this was its first snapshot, still `initial`
with no version.

Every node judges every blob, so several may condemn one blob at once (a
maker gone): the compare-and-swap lets one write, and only the writer emits
the event. A maker that comes back and finishes a copy finds its blob no
longer `initial` and discards the copy (``snapshots.py``); a file it adopted
before dying goes with ``blob_rules.fault``'s rule for `error` blobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sfmesh.v1 import artifact_pb2, event_pb2, records_pb2

from services.common.events import EventSink
from services.common.store import Store, kind_prefix
from services.node_agent import blob_rules, reservations

log = logging.getLogger("sfmesh.node_agent.abandoned_blobs")

EVENT = "abandoned blob marked error"


class AbandonedBlobs:
    """Marks `error` the `initial` blobs whose maker will never make them,
    as node `node` sees it."""

    def __init__(
        self,
        *,
        node: str,
        store: Store,
        making: Callable[[], frozenset[str]],
        grace: float,
        clock: Callable[[], float],
        events: EventSink | None = None,
    ) -> None:
        self._node = node
        self._store = store
        self._making = making
        self._grace = grace
        self._clock = clock
        self._events = events

    async def sweep(
        self, records: Iterable[records_pb2.BlobRecord], alive: frozenset[str]
    ) -> list[str]:
        """Mark `error` each of `records` that is abandoned; those this node
        marked."""
        now = self._clock()
        waiting = [
            record
            for record in records
            if record.blob.state == artifact_pb2.BLOB_STATE_INITIAL
            and now - record.created_at >= self._grace
        ]
        if not waiting:
            return []  # the usual case: no node record read
        lastseen = await self._lastseen()
        marked = []
        for record in waiting:
            reason = self._judge(record, alive, lastseen, now)
            if reason is not None and await self._mark(record.blob.uuid, alive, lastseen, now):
                marked.append(record.blob.uuid)
        return marked

    def _judge(
        self,
        record: records_pb2.BlobRecord,
        alive: frozenset[str],
        lastseen: dict[str, float],
        now: float,
    ) -> str | None:
        return blob_rules.abandoned(
            record,
            self._node,
            making=self._making(),
            alive=alive,
            lastseen=lastseen,
            now=now,
            grace=self._grace,
        )

    async def _mark(
        self, uuid: str, alive: frozenset[str], lastseen: dict[str, float], now: float
    ) -> bool:
        """Mark blob `uuid` `error` when, read again, it is still abandoned;
        whether this node wrote it."""
        reasons: list[str] = []

        def judge(record: records_pb2.BlobRecord) -> str | None:
            reason = self._judge(record, alive, lastseen, now)
            if reason is None:
                return None
            reasons.append(reason)
            return f"{EVENT}: {reason}"

        failed = await reservations.fail(self._store, uuid, judge)
        if failed is None:
            return False
        maker = failed.blob.maker_node
        extra = {"reason": reasons[-1], "maker_node": maker, "node": self._node}
        log.warning("%s: %s", EVENT, reasons[-1], extra={"fields": {"blob": uuid, **extra}})
        if self._events is not None:
            self._events.emit("blob", uuid, event_pb2.EVENT_TYPE_STATUS, EVENT, extra=extra)
            reservations.artifact_failed_event(self._events, failed)
        return True

    async def _lastseen(self) -> dict[str, float]:
        """Every node record's last report time, by node name."""
        seen = {}
        async for item in self._store.list_prefix(kind_prefix("node")):
            record = records_pb2.NodeRecord.FromString(item.value)
            seen[record.name] = record.lastseen
        return seen
