"""The single writer in front of the event store.

SQLite takes one writer at a time, so every batch from every producer goes
through one thread, in arrival order; each batch is one durable transaction.
Watchers are woken after each commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from typing import TypeVar

from sfmesh.v1 import eventlog_service_pb2

from services.eventlog.storage import EventStore

T = TypeVar("T")


class Writer:
    """Serialises writes to the store on one thread and announces commits."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="eventlog-writer"
        )
        self._committed = asyncio.Condition()
        self.generation = 0
        """Increases with every commit; watchers wait for it to move."""

    async def append(
        self, producer_id: str, records: Sequence[eventlog_service_pb2.EventRecord]
    ) -> int:
        """Store one batch durably; returns the producer's committed sequence."""
        committed = await self.run(lambda: self.store.append(producer_id, records))
        async with self._committed:
            self.generation += 1
            self._committed.notify_all()
        return committed

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, work)

    async def wait_for_commit(self, generation: int, patience: float) -> None:
        """Return once a commit after `generation` happened, or after `patience` seconds."""
        async with self._committed:
            if self.generation != generation:
                return
            try:
                await asyncio.wait_for(
                    self._committed.wait_for(lambda: self.generation != generation), patience
                )
            except TimeoutError:
                return

    def close(self) -> None:
        """Finish queued writes and stop the thread."""
        self._thread.shutdown(wait=True)
