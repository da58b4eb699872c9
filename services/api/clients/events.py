"""The api's side of events: it records what happens to instances,
networks, artifacts, blobs and nodes through the process's emitter (or
into an outbox entry, `outbox.py`), and reads an
object's events back from the eventlog, carrying the internal identity.
Every `/events` route reads through `Events.listed`, so `event_type` and
`limit` mean the same on each.

Reads go to any eventlog replica that serves (``services/common/replicas.py``).
A list in flight on a replica that dies fails (503), as any call does. A
watch broken that way (UNAVAILABLE) is opened again, after the last cursor
it delivered, on a replica that serves: replicas share one store, so
cursors mean the same on each, and nothing is missed or repeated (one
eventlog restarting on its SQLite file keeps its cursors too). A watch that
had delivered nothing yet starts again from its request's cursor or time,
or from when it was opened (the events' own timestamps). It gives up, with
503, once reopening has failed for `WATCH_RESUME_WINDOW` seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import grpc
from sfmesh.v1 import event_pb2, eventlog_service_pb2, eventlog_service_pb2_grpc

from services.common import errors
from services.common.channels import quick_reconnect
from services.common.events import EventEmitter, EventSink
from services.common.replicas import replica_channel
from services.common.tokens import InternalCredentials
from services.common.transport import Transport

LIST_DEADLINE = 5.0
WATCH_RESUME_WINDOW = 10.0
"""Seconds a broken watch keeps being opened again before it fails: long
enough for a lone eventlog's restart."""
WATCH_RESUME_PAUSE = 0.2
"""Seconds between attempts to open a broken watch again."""
DEFAULT_EVENT_LIMIT = 100
"""Events a list answers when the request names no limit."""

INSTANCE = "instance"
NETWORK = "network"
ARTIFACT = "artifact"
BLOB = "blob"
NODE = "node"
INTERFACE = "networkinterface"
AUDIT = event_pb2.EVENT_TYPE_AUDIT
MUTATE = event_pb2.EVENT_TYPE_MUTATE


class EventQuery(Protocol):
    """What every `/events` request carries besides the object: an
    `event_type` (unset: every type) and an optional `limit`."""

    @property
    def event_type(self) -> event_pb2.EventType: ...

    @property
    def limit(self) -> int: ...

    def HasField(self, field_name: str) -> bool: ...


class Recorder:
    """The api's kinds of events, recorded on a sink: the process's emitter
    (`Events`), or an outbox entry's batch (`clients/outbox.py`)."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink

    def audit(
        self,
        uuid: str,
        message: str,
        extra: Mapping[str, Any] | None = None,
        *,
        kind: str = INSTANCE,
    ) -> None:
        """Record an audit event on an instance (or another `kind` of object)."""
        self._sink.emit(kind, uuid, AUDIT, message, extra=extra)

    def attribute_set(self, uuid: str, attribute: str, value: Any, *, kind: str = INSTANCE) -> None:
        """Record a `set attribute` mutation on an instance (or another `kind`
        of object; reference §7.2)."""
        extra = dict(value) if isinstance(value, Mapping) else {"value": value}
        self._sink.emit(
            kind, uuid, MUTATE, "set attribute", extra={**extra, "attribute": attribute}
        )


class Events(Recorder):
    """Records events (never blocking) and reads them from the eventlog."""

    def __init__(
        self,
        emitter: EventEmitter,
        address: str,
        credentials: InternalCredentials,
        *,
        transport: Transport,
    ) -> None:
        super().__init__(emitter)
        self._channel = replica_channel(
            transport, address, role="eventlog", extra=quick_reconnect()
        )
        self._stub = eventlog_service_pb2_grpc.EventLogServiceStub(self._channel)
        self._credentials = credentials

    async def newest(
        self, object_type: str, object_uuid: str, *, event_type: event_pb2.EventType, limit: int
    ) -> list[event_pb2.Event]:
        """One object's events, newest first."""
        request = eventlog_service_pb2.ListRequest(
            object_type=object_type, object_uuid=object_uuid, event_type=event_type, limit=limit
        )
        try:
            reply = await self._stub.List(
                request, metadata=self._credentials.metadata(), timeout=LIST_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise _unavailable(exc) from exc
        return list(reply.events)

    async def listed(
        self, object_type: str, object_uuid: str, query: EventQuery
    ) -> list[event_pb2.Event]:
        """One object's events as an `/events` route answers them: newest
        first, of the query's type, at most its limit (100 when unset)."""
        limit = query.limit if query.HasField("limit") else DEFAULT_EVENT_LIMIT
        return await self.newest(object_type, object_uuid, event_type=query.event_type, limit=limit)

    async def watch(
        self, request: eventlog_service_pb2.WatchRequest
    ) -> AsyncIterator[eventlog_service_pb2.WatchResponse]:
        """One object's events from a cursor or time, then live; opened
        again where it broke when its replica is lost (module docstring)."""
        query = eventlog_service_pb2.WatchRequest()
        query.CopyFrom(request)
        if not query.HasField("cursor") and not query.HasField("since"):
            query.since = time.time()
        clock = asyncio.get_running_loop().time
        deadline: float | None = None  # when to give up reopening; None while unbroken
        call = self._stub.Watch(request, metadata=self._credentials.metadata())
        while True:
            opened = clock()
            try:
                async for item in call:
                    query.cursor = item.cursor
                    deadline = None
                    yield item
                return
            except grpc.aio.AioRpcError as exc:
                now = clock()
                if deadline is None or now - opened > WATCH_RESUME_WINDOW:
                    deadline = now + WATCH_RESUME_WINDOW  # it had held: a new outage
                if exc.code() != grpc.StatusCode.UNAVAILABLE or now >= deadline:
                    raise _unavailable(exc) from exc
            finally:
                call.cancel()
            await asyncio.sleep(WATCH_RESUME_PAUSE)
            call = self._stub.Watch(query, metadata=self._credentials.metadata())

    async def close(self) -> None:
        """Close the reading channel (the emitter belongs to the process)."""
        await self._channel.close()


def _unavailable(exc: grpc.aio.AioRpcError) -> errors.SfmeshError:
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return errors.InvalidArgument(exc.details() or "bad event query")
    return errors.Unavailable(
        f"the eventlog is unavailable ({exc.code().name})", reason="EVENTLOG_UNAVAILABLE"
    )
