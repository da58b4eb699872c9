"""The streaming and event RPCs of InstanceService: watches of instances
(an etcd snapshot, then a watch from its revision) and an instance's events
(from the eventlog, after the usual name resolution and visibility check)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from sfmesh.v1 import eventlog_service_pb2, instance_service_pb2

from services.api.clients.events import DEFAULT_EVENT_LIMIT, Events
from services.api.instances import watch
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.interceptors import caller


class Observation:
    """Mixed into the instance servicer, which provides `_resolve`, `_events`
    and `_instances`."""

    _events: Events
    _instances: InstanceStore
    _resolve: Callable[[str], Awaitable[StoredInstance]]

    async def WatchInstances(
        self, request: instance_service_pb2.WatchInstancesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[instance_service_pb2.WatchInstancesResponse]:
        namespace = caller().namespace
        current, revision = await self._instances.snapshot()
        for stored in current:
            instance = stored.record.instance
            if watch.shown(namespace, request.all, None, instance):
                yield instance_service_pb2.WatchInstancesResponse(
                    change=watch.Change.CHANGE_TYPE_EXISTING, instance=instance
                )
        async for before, after in self._instances.changes(after=revision):
            old = before.instance if before else None
            new = after.instance if after else None
            if watch.shown(namespace, request.all, old, new):
                change, instance = watch.classify(old, new)
                yield instance_service_pb2.WatchInstancesResponse(change=change, instance=instance)

    async def WatchInstance(
        self, request: instance_service_pb2.WatchInstanceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[instance_service_pb2.WatchInstanceResponse]:
        stored = await self._resolve(request.ref)
        uuid = stored.record.instance.uuid
        yield instance_service_pb2.WatchInstanceResponse(
            change=watch.Change.CHANGE_TYPE_EXISTING, instance=stored.record.instance
        )
        async for before, after in self._instances.changes(after=stored.mod_revision, uuid=uuid):
            change, instance = watch.classify(
                before.instance if before else None, after.instance if after else None
            )
            yield instance_service_pb2.WatchInstanceResponse(change=change, instance=instance)
            if change == watch.Change.CHANGE_TYPE_PURGED:
                return

    async def ListInstanceEvents(
        self,
        request: instance_service_pb2.ListInstanceEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.ListInstanceEventsResponse:
        stored = await self._resolve(request.ref)
        events = await self._events.newest(
            "instance",
            stored.record.instance.uuid,
            event_type=request.event_type,
            limit=request.limit if request.HasField("limit") else DEFAULT_EVENT_LIMIT,
        )
        return instance_service_pb2.ListInstanceEventsResponse(events=events)

    async def WatchInstanceEvents(
        self,
        request: instance_service_pb2.WatchInstanceEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[instance_service_pb2.WatchInstanceEventsResponse]:
        stored = await self._resolve(request.ref)
        query = eventlog_service_pb2.WatchRequest(
            object_type="instance",
            object_uuid=stored.record.instance.uuid,
            event_type=request.event_type,
        )
        if request.HasField("cursor"):
            query.cursor = request.cursor
        if request.HasField("since"):
            query.since = request.since
        async for item in self._events.watch(query):
            yield instance_service_pb2.WatchInstanceEventsResponse(
                event=item.event, cursor=item.cursor
            )
