"""The streaming and event RPCs of InstanceService: watches of instances
(an etcd snapshot, then a watch from its revision) and an instance's events
(from the eventlog, after the usual name resolution and visibility check)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sfmesh.v1 import eventlog_service_pb2, instance_service_pb2

from services.api.clients.events import INSTANCE, Events
from services.api.instances import watch
from services.api.instances.lookup import InstanceLookup
from services.common.instance_store import InstanceStore
from services.common.interceptors import caller


class Observation:
    """Watches of instances, and an instance's events."""

    def __init__(self, lookup: InstanceLookup, instances: InstanceStore, events: Events) -> None:
        self._lookup = lookup
        self._instances = instances
        self._events = events

    async def watch_all(
        self, request: instance_service_pb2.WatchInstancesRequest
    ) -> AsyncIterator[instance_service_pb2.WatchInstancesResponse]:
        """Every visible instance, then each change seen."""
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

    async def watch_one(
        self, request: instance_service_pb2.WatchInstanceRequest
    ) -> AsyncIterator[instance_service_pb2.WatchInstanceResponse]:
        """The instance, then each of its changes, until it is purged."""
        stored = await self._lookup.resolve(request.ref)
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

    async def list_events(
        self, request: instance_service_pb2.ListInstanceEventsRequest
    ) -> instance_service_pb2.ListInstanceEventsResponse:
        """The instance's events, newest first."""
        stored = await self._lookup.resolve(request.ref)
        events = await self._events.listed(INSTANCE, stored.record.instance.uuid, request)
        return instance_service_pb2.ListInstanceEventsResponse(events=events)

    async def watch_events(
        self, request: instance_service_pb2.WatchInstanceEventsRequest
    ) -> AsyncIterator[instance_service_pb2.WatchInstanceEventsResponse]:
        """The instance's events from a cursor or time, then live."""
        stored = await self._lookup.resolve(request.ref)
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
