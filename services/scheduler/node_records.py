"""The leader's node records in etcd (`/sfmesh/v1/node/<name>`), and the
presence leases that make nodes `created` or `missing`.

Each node agent keeps its presence key alive under a lease of its own
(`services/common/presence.py`). While this replica leads it follows those
keys, a snapshot then a watch from its revision: a key that goes (the lease
expired, the agent stopped, or the api deleted the node) makes a created
node `missing` and ends its report stream; a key that comes back makes a
missing node `created` again. The lease, not this process, is the clock, so
a node whose host vanished goes missing a lease TTL later whichever replica
leads by then; a new leader marks missing at once the created nodes whose
key is already gone.

Every write reads the record and compares on its revision, keeping what the
api owns (metadata, `deleted`), and is fenced by the leader's term, so a
deposed scheduler writes nothing. Each state change is an event on the node
(`node_states.py` decides them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sfmesh.v1 import event_pb2, records_pb2, scheduler_service_pb2

from services.common import errors
from services.common.events import EventSink
from services.common.presence import node_of, presence_key, presence_prefix
from services.common.store import Put, Store, key, kind_prefix
from services.scheduler.leadership import Term
from services.scheduler.node_states import (
    CREATED,
    DELETED,
    MISSING,
    Written,
    lapsed,
    registered,
    returned,
)
from services.scheduler.registry import Registry

log = logging.getLogger("sfmesh.scheduler")

AWAITED_REPORTS = 3
"""Report intervals a created node has to (re)open its stream after a
scheduler takes the lead or a stream is lost, before a refusal counts as final."""
ATTEMPTS = 5
"""Tries of one record write when another writer changed the record."""
RESYNC_DELAY = 1.0
"""Seconds before following the presence keys again after a failure."""
STOP_WAIT = 5.0
"""Seconds `stop` waits for the presence watch to end."""
NODE = "node"
"""The object type of node events."""
WHY = {
    "created": "node created: its agent reported for the first time",
    "missing": "node missing: its presence lease expired",
    "back": "node back: its agent holds its presence lease again",
}


@dataclass(frozen=True)
class Timing:
    """The scheduler's clocks, in seconds."""

    report_interval: int = 5
    """Told to node agents in every acknowledgement."""
    record_interval: float = 10.0
    """The node record's lastseen/last_report are rewritten at most this often."""

    @property
    def awaited_for(self) -> float:
        """How long a created node without a stream keeps refusals from being
        final: AWAITED_REPORTS report intervals."""
        return AWAITED_REPORTS * self.report_interval


Decide = Callable[[records_pb2.NodeRecord | None], Written | None]


class NodeRecords:
    """Writes node records, and follows presence keys while leading."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        timing: Timing,
        emitter: EventSink,
        *,
        lost: Callable[[str], None],
    ) -> None:
        """`lost(name)`: a node's presence went; end its stream."""
        self._store = store
        self._registry = registry
        self._timing = timing
        self._emitter = emitter
        self._lost = lost
        self._following: asyncio.Task[None] | None = None

    async def lead(self, term: Term) -> None:
        """Bring the records in line with the presence keys, await the
        created nodes' reports, then follow the keys for the term."""
        revision = await self._resync(term)
        self._following = asyncio.create_task(self._follow(term, revision), name="presence")

    async def stop(self) -> None:
        """Stop following the presence keys. Waited for at most STOP_WAIT:
        an etcd call cancelled under it may end in an error rather than the
        cancellation, which the watch's own retries would then swallow; the
        term is over by then, so such a straggler writes nothing."""
        if self._following is not None:
            self._following.cancel()
            done, _ = await asyncio.wait([self._following], timeout=STOP_WAIT)
            if not done:
                log.warning("the presence watch did not stop in time; left to end")
            self._following = None

    def expect_back(self, name: str) -> None:
        """A created node's stream ended: await its report for a while."""
        self._registry.expect(name, self._timing.awaited_for)

    async def register(
        self,
        facts: scheduler_service_pb2.HypervisorFacts,
        report: scheduler_service_pb2.ReportNodeRequest,
        now: float,
        term: Term,
        *,
        opening: bool,
    ) -> None:
        """Record a reporting node as created, with its last report. Raises
        NodeDeleted for a deleted node, NotPresent when its presence key is
        gone (read at the stream's `opening`; later, a `missing` record says
        so). An etcd failure is only logged: the stream, not the record,
        makes a node schedulable."""
        try:
            present = None
            if opening:
                present = await self._store.get(presence_key(facts.node)) is not None
            await self._write(
                facts.node,
                lambda found: registered(found, facts, report, now, present=present),
                term,
            )
        except errors.Unavailable as exc:
            log.error(
                "could not write node record: %s", exc, extra={"fields": {"node": facts.node}}
            )

    async def _resync(self, term: Term) -> int:
        """Created nodes without a presence key go missing, missing ones with
        one come back, and the created ones are awaited; the revision read."""
        snapshot = await self._store.snapshot(presence_prefix())
        present = {node_of(item.key) for item in snapshot.items}
        async for item in self._store.list_prefix(kind_prefix("node")):
            record = records_pb2.NodeRecord.FromString(item.value)
            if record.name not in present:
                if record.state == CREATED:
                    await self._lapse(record.name, term)
                continue
            if record.state == MISSING:
                await self._write(record.name, _existing(returned), term)
            if record.state != DELETED and not self._registry.connected(record.name):
                self.expect_back(record.name)
        return snapshot.revision

    async def _follow(self, term: Term, revision: int) -> None:
        while not term.over.is_set():
            try:
                changes = self._store.watch_prefix(presence_prefix(), start_revision=revision + 1)
                async with contextlib.aclosing(changes):
                    async for change in changes:
                        name = node_of(change.key)
                        if change.value is None:
                            await self._lapse(name, term)
                        else:
                            await self._write(name, _existing(returned), term)
            except errors.SfmeshError as exc:  # compaction or etcd unreachable
                log.warning("presence watch restarting: %s", exc.message)
            await asyncio.sleep(RESYNC_DELAY)
            with contextlib.suppress(errors.SfmeshError):
                revision = await self._resync(term)

    async def _lapse(self, name: str, term: Term) -> None:
        """A node's presence went: missing if it was created; its stream ends
        and it is no longer awaited either way (a deleted node's key goes too)."""
        self._lost(name)
        self._registry.give_up(name)
        await self._write(name, _existing(lapsed), term)

    async def _write(self, name: str, decide: Decide, term: Term) -> None:
        """Read, decide, and write with compare-and-swap, fenced by `term`;
        again when another writer got there first."""
        at = key("node", name)
        for _ in range(ATTEMPTS):
            if term.over.is_set():
                return
            item = await self._store.get(at)
            written = decide(records_pb2.NodeRecord.FromString(item.value) if item else None)
            if written is None:
                return
            expected = item.mod_revision if item else 0
            value = written.record.SerializeToString()
            if await self._store.commit([term.fence(), Put(at, value, expected)]):
                if written.became:
                    self._recorded(name, written)
                return
        log.warning("node record kept changing; not written", extra={"fields": {"node": name}})

    def _recorded(self, name: str, written: Written) -> None:
        level = logging.WARNING if written.became == "missing" else logging.INFO
        log.log(level, WHY[written.became], extra={"fields": {"node": name}})
        state = "missing" if written.became == "missing" else "created"
        self._emitter.emit(NODE, name, event_pb2.EVENT_TYPE_STATUS, WHY[written.became])
        self._emitter.emit(
            NODE,
            name,
            event_pb2.EVENT_TYPE_MUTATE,
            "set attribute",
            extra={"attribute": "state", "value": state},
        )


def _existing(
    change: Callable[[records_pb2.NodeRecord], Written | None],
) -> Decide:
    """`change` applied to a record that exists; nothing for one that does not."""
    return lambda found: change(found) if found is not None else None
