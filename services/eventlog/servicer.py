"""EventLogService: ingest over a bidirectional stream, newest-first lists,
and watches that start from a cursor or a time and then go live."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from sfmesh.v1 import eventlog_service_pb2, eventlog_service_pb2_grpc

from services.common import errors
from services.eventlog.storage import EventStore, StoredEvent
from services.eventlog.writer import Writer

log = logging.getLogger("sfmesh.eventlog")

DEFAULT_LIMIT = 100
WATCH_PAGE = 1000
WATCH_IDLE_CHECK = 1.0
"""Seconds a watcher sleeps at most before looking again, commit or not."""


def invalid_reason(record: eventlog_service_pb2.EventRecord) -> str | None:
    """Why a record cannot be stored, or None. Pure."""
    if not record.event_id:
        return "no event_id"
    if not record.object_type or not record.object_uuid:
        return "no object_type or object_uuid"
    if record.type == 0:
        return "no type"
    return None


class EventLogServicer(eventlog_service_pb2_grpc.EventLogServiceServicer):
    """The eventlog over an EventStore."""

    def __init__(self, store: EventStore, writer: Writer) -> None:
        self._store = store
        self._writer = writer

    async def Record(
        self,
        request_iterator: AsyncIterator[eventlog_service_pb2.RecordRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[eventlog_service_pb2.RecordResponse]:
        async for batch in request_iterator:
            if not batch.producer_id:
                raise errors.InvalidArgument("every batch needs a producer_id")
            valid = [r for r in batch.events if not self._refused(batch.producer_id, r)]
            committed = await self._writer.append(batch.producer_id, valid)
            if len(valid) < len(batch.events):
                # Acknowledge past refused records too, so the producer drops them.
                committed = max([committed, *(r.sequence for r in batch.events)])
            yield eventlog_service_pb2.RecordResponse(committed_sequence=committed)

    def _refused(self, producer_id: str, record: eventlog_service_pb2.EventRecord) -> bool:
        reason = invalid_reason(record)
        if reason is not None:
            log.warning(
                "dropped an event that cannot be stored",
                extra={"fields": {"producer": producer_id, "reason": reason}},
            )
        return reason is not None

    async def List(
        self, request: eventlog_service_pb2.ListRequest, context: grpc.aio.ServicerContext
    ) -> eventlog_service_pb2.ListResponse:
        limit = request.limit if request.HasField("limit") else DEFAULT_LIMIT
        found = await asyncio.to_thread(
            self._store.newest,
            request.object_type,
            request.object_uuid,
            event_type=request.event_type,
            limit=limit,
        )
        return eventlog_service_pb2.ListResponse(events=[stored.event for stored in found])

    async def Watch(
        self, request: eventlog_service_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[eventlog_service_pb2.WatchResponse]:
        cursor = await self._start_cursor(request)
        while True:
            generation = self._writer.generation
            found = await asyncio.to_thread(
                self._store.after,
                request.object_type,
                request.object_uuid,
                cursor=cursor,
                event_type=request.event_type,
                limit=WATCH_PAGE,
            )
            for stored in found:
                cursor = stored.cursor
                yield _watched(stored)
            if len(found) < WATCH_PAGE:
                await self._writer.wait_for_commit(generation, WATCH_IDLE_CHECK)

    async def _start_cursor(self, request: eventlog_service_pb2.WatchRequest) -> int:
        """Where a watch starts: after a cursor, from a time, or from now."""
        if request.HasField("cursor"):
            try:
                return int(request.cursor)
            except ValueError:
                raise errors.InvalidArgument(f"bad cursor {request.cursor!r}") from None
        if request.HasField("since"):
            earlier = await asyncio.to_thread(
                self._store.since,
                request.object_type,
                request.object_uuid,
                timestamp=request.since,
                event_type=request.event_type,
                limit=1,
            )
            if earlier:
                return earlier[0].cursor - 1
        return await asyncio.to_thread(self._store.last_cursor)


def _watched(stored: StoredEvent) -> eventlog_service_pb2.WatchResponse:
    return eventlog_service_pb2.WatchResponse(event=stored.event, cursor=str(stored.cursor))
