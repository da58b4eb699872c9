"""The leader's node records in etcd (`/sfmesh/v1/node/<name>`): `created`
with facts and the last report while a node's stream lives, rewritten at
most every record interval; `missing` once a created node has had no stream
for the grace period. Each write is fenced by the leader's term, so a
deposed scheduler writes no record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sfmesh.v1 import node_service_pb2, records_pb2, scheduler_service_pb2

from services.common import errors
from services.common.store import Put, Store, key, kind_prefix
from services.scheduler.leadership import Term
from services.scheduler.registry import Registry

log = logging.getLogger("sfmesh.scheduler")

CREATED = node_service_pb2.NODE_STATE_CREATED
MISSING = node_service_pb2.NODE_STATE_MISSING
AWAITED_REPORTS = 3
"""Report intervals a created node has to (re)open its stream after a
scheduler takes the lead or a stream is lost, before a refusal counts as final."""


@dataclass(frozen=True)
class Timing:
    """The scheduler's clocks, in seconds."""

    report_interval: int = 5
    """Told to node agents in every acknowledgement."""
    node_grace: float = 30.0
    """Without a stream this long, a node is marked missing in etcd."""
    record_interval: float = 10.0
    """The node record's lastseen/last_report are rewritten at most this often."""

    @property
    def awaited_for(self) -> float:
        """How long a created node without a stream keeps refusals from being
        final: AWAITED_REPORTS report intervals, at most the node grace."""
        return min(AWAITED_REPORTS * self.report_interval, self.node_grace)


class NodeRecords:
    """Writes node records and marks the nodes that stay away missing."""

    def __init__(self, store: Store, registry: Registry, timing: Timing) -> None:
        self._store = store
        self._registry = registry
        self._timing = timing
        self._watchers: set[asyncio.Task[None]] = set()

    async def await_created(self, term: Term) -> None:
        """Nodes etcd shows as created are expected to report; those that
        never reconnect go missing after the grace period."""
        async for item in self._store.list_prefix(kind_prefix("node")):
            record = records_pb2.NodeRecord.FromString(item.value)
            if record.state == CREATED:
                self.expect_back(record.name, term)

    def expect_back(self, name: str, term: Term) -> None:
        """A created node without a stream: await its report for a while,
        and mark it missing if it stays away for the grace period."""
        self._registry.expect(name, self._timing.awaited_for)
        task = asyncio.create_task(self._mark_missing_later(name, term))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def stop(self) -> None:
        """Stop the missing-node timers."""
        for task in list(self._watchers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def write(
        self,
        facts: scheduler_service_pb2.HypervisorFacts,
        report: scheduler_service_pb2.ReportNodeRequest,
        now: float,
        term: Term,
    ) -> None:
        """Record a reporting node as created, with its last report."""
        record = records_pb2.NodeRecord(
            name=facts.node, state=CREATED, facts=facts, lastseen=now, last_report=report
        )
        record.last_report.ClearField("facts")
        try:
            await self._store.commit(
                [term.fence(), Put(key("node", facts.node), record.SerializeToString())]
            )
        except errors.SfmeshError as exc:
            # The stream, not etcd, makes a node schedulable: keep serving it.
            log.error(
                "could not write node record: %s", exc, extra={"fields": {"node": facts.node}}
            )

    async def _mark_missing_later(self, name: str, term: Term) -> None:
        await asyncio.sleep(self._timing.node_grace)
        if self._registry.connected(name):
            return
        try:
            item = await self._store.get(key("node", name))
            if item is None:
                return
            record = records_pb2.NodeRecord.FromString(item.value)
            if record.state != CREATED:
                return
            record.state = MISSING
            # Lost to a reconnect's write in between: that node is back.
            written = await self._store.commit(
                [term.fence(), Put(item.key, record.SerializeToString(), item.mod_revision)]
            )
            if written:
                log.warning("node missing", extra={"fields": {"node": name}})
        except errors.SfmeshError as exc:
            log.error("could not mark node missing: %s", exc, extra={"fields": {"node": name}})
