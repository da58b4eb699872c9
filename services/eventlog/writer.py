"""The single writer in front of the event store.

A store takes one writer at a time (SQLite by nature, PostgreSQL by the
append lock its replicas share), so every batch from every producer goes
through one thread, in arrival order. Batches that arrive while a transaction
is being written wait and then go together in the next one (group commit):
one fsync serves every producer, which is what lets ingest scale with them.
Watchers are woken after each commit, this process's or, when the store
reports them (`EventStore.watch_commits`), another replica's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sfmesh.v1 import eventlog_service_pb2

from services.eventlog import metrics
from services.eventlog.storage import EventStore

T = TypeVar("T")


@dataclass
class _Pending:
    """A batch waiting for the next transaction."""

    producer_id: str
    records: Sequence[eventlog_service_pb2.EventRecord]
    committed: asyncio.Future[int]


class Writer:
    """Serialises writes to the store on one thread and announces commits."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._waiting: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="eventlog-writer"
        )
        self._committed = asyncio.Condition()
        self.generation = 0
        """Increases with every commit; watchers wait for it to move."""
        self._loop = asyncio.get_running_loop()
        store.watch_commits(self._committed_elsewhere)

    async def append(
        self, producer_id: str, records: Sequence[eventlog_service_pb2.EventRecord]
    ) -> int:
        """Store one batch durably; returns the producer's committed sequence."""
        pending = _Pending(producer_id, records, asyncio.get_running_loop().create_future())
        self._waiting.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await pending.committed

    async def _flush(self) -> None:
        """Write whatever waits, in as few transactions as arrivals allow."""
        while self._waiting:
            group, self._waiting = self._waiting, []
            batches = [(p.producer_id, p.records) for p in group]
            try:
                committed = await self.run(functools.partial(self.store.append_batches, batches))
            except Exception as exc:
                for pending in group:
                    if not pending.committed.done():  # its stream may have gone
                        pending.committed.set_exception(exc)
                continue
            metrics.committed(sum(len(pending.records) for pending in group))
            for pending, sequence in zip(group, committed, strict=True):
                if not pending.committed.done():
                    pending.committed.set_result(sequence)
            await self._announce()

    async def _announce(self) -> None:
        """Tell the watchers that a commit happened."""
        async with self._committed:
            self.generation += 1
            self._committed.notify_all()

    def _committed_elsewhere(self) -> None:
        """Another replica committed (called from the store's thread)."""
        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._announce(), self._loop)

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def wait_for_commit(self, generation: int, patience: float) -> None:
        """Return once a commit after `generation` happened, or after `patience` seconds."""
        async with self._committed:
            if self.generation != generation:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(patience):  # not wait_for: see node_agent/reporter
                    await self._committed.wait_for(lambda: self.generation != generation)

    def close(self) -> None:
        """Finish queued writes and stop the thread."""
        self._thread.shutdown(wait=True)
