"""InstanceService: each RPC checks, calls the domain, and answers.

Listing, reading and deleting are written here; the other routes are
delegated, one line each, to handlers that are given what they use:
`Creation`, `Power`, `Console`, `GraphicsConsole`, `BrowserConsole`,
`AgentOperations`, `Observation`, `Snapshots`, `Hotplug` and the metadata
handler.
Errors are raised as `services.common.errors` and mapped once by the request
interceptor.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import grpc
from google.api import httpbody_pb2
from google.protobuf import empty_pb2, json_format, struct_pb2
from sfmesh.v1 import (
    agent_operation_pb2,
    instance_pb2,
    instance_service_pb2,
    instance_service_pb2_grpc,
    records_pb2,
)

from services.api.clients.events import INSTANCE, Events
from services.api.clients.node_agents import NodeAgents
from services.api.clients.outbox import Outbox
from services.api.instances.agent_operations import AgentOperations
from services.api.instances.browser_console import BrowserConsole
from services.api.instances.cache import InstanceCache
from services.api.instances.console import Console
from services.api.instances.creation import Creation
from services.api.instances.deletion import Finisher, ask_deletion
from services.api.instances.graphics import GraphicsConsole
from services.api.instances.history import record_state
from services.api.instances.hotplug import Hotplug
from services.api.instances.lookup import InstanceLookup
from services.api.instances.observation import Observation
from services.api.instances.power import Operation, Power
from services.api.instances.snapshots import Snapshots
from services.api.metadata.handler import MetadataEvents, MetadataHandler
from services.api.namespaces import rules as namespace_rules
from services.api.namespaces.store import NamespaceStore
from services.api.visibility import can_see
from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.interceptors import caller


def instance_metadata(record: records_pb2.InstanceRecord, ref: str) -> struct_pb2.Struct:
    """An instance's metadata in its record. Pure."""
    return record.instance.metadata


def instance_uuid(stored: StoredInstance) -> str:
    """The uuid an instance's events are recorded on. Pure."""
    return stored.record.instance.uuid


class InstanceServicer(instance_service_pb2_grpc.InstanceServiceServicer):
    """The instance API over etcd."""

    def __init__(
        self,
        instances: InstanceStore,
        namespaces: NamespaceStore,
        events: Events,
        outbox: Outbox,
        node_agents: NodeAgents,
        creation: Creation,
        finisher: Finisher,
        cache: InstanceCache,
        snapshots: Snapshots,
        hotplug: Hotplug,
        node_state: Callable[[str], int | None],
        *,
        browser_console: BrowserConsole,
        agent_operations: AgentOperations,
    ) -> None:
        """`outbox` carries a delete's events in its write, `creation` makes
        new instances, `finisher` ends deletes, `cache`
        answers reads by UUID while it may, `snapshots` copies disks,
        `hotplug` adds NICs to running instances,
        `node_state` says the state of a node by name (None: unknown),
        `browser_console` issues console tickets and relays consoles,
        `agent_operations` runs operations in guests' agents."""
        self._hotplug = hotplug
        self._browser_console = browser_console
        self._node_state = node_state
        self._instances = instances
        self._namespaces = namespaces
        self._outbox = outbox
        self._creation = creation
        self._finisher = finisher
        self._lookup = InstanceLookup(instances, cache)
        self._snapshots = snapshots
        self._power = Power(self._lookup, events, node_agents)
        self._console = Console(self._lookup, events, node_agents)
        self._graphics = GraphicsConsole(self._lookup, events, node_agents)
        self._agent = agent_operations
        self._observation = Observation(self._lookup, instances, events)
        self._metadata = MetadataHandler(
            find=self._lookup.resolve,
            metadata_of=instance_metadata,
            update=instances.update,
            bounded=True,
            recorded=MetadataEvents(events, INSTANCE, instance_uuid),
        )

    def _view(
        self, instance: instance_pb2.Instance, view: instance_pb2.Instance
    ) -> instance_pb2.Instance:
        """`instance` copied into `view`, with its node's state."""
        view.CopyFrom(instance)
        state = self._node_state(instance.node) if instance.node else None
        if state is not None:
            view.node_state = state  # type: ignore[assignment]
        return view

    async def ListInstances(
        self, request: instance_service_pb2.ListInstancesRequest, context: grpc.aio.ServicerContext
    ) -> instance_service_pb2.ListInstancesResponse:
        if request.page_size < 0:
            raise errors.InvalidArgument("page_size must not be negative")
        namespace = caller().namespace
        reply = instance_service_pb2.ListInstancesResponse()
        async for stored in self._instances.all(after=request.page_token):
            instance = stored.record.instance
            if not can_see(namespace, instance.namespace):
                continue
            if request.all or instance.state in states.ACTIVE:
                self._view(instance, reply.instances.add())
                if len(reply.instances) == request.page_size:
                    reply.next_page_token = instance.uuid
                    break
        return reply

    async def GetInstance(
        self, request: instance_service_pb2.GetInstanceRequest, context: grpc.aio.ServicerContext
    ) -> instance_pb2.Instance:
        instance = (await self._lookup.read(request.ref)).record.instance
        return self._view(instance, instance_pb2.Instance())

    async def CreateInstance(
        self,
        request: instance_service_pb2.CreateInstanceRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_pb2.Instance:
        return await self._creation.create(request)

    async def DeleteInstance(
        self, request: instance_service_pb2.DeleteInstanceRequest, context: grpc.aio.ServicerContext
    ) -> instance_pb2.Instance:
        stored = await self._lookup.resolve(request.ref)
        if request.HasField("namespace") and await self._namespaces.get(request.namespace) is None:
            raise errors.NotFound("namespace not found")
        before = stored.record.instance
        if before.state == states.DELETED:
            raise errors.NotFound("instance not found")
        if request.HasField("namespace") and request.namespace != before.namespace:
            raise errors.NotFound("instance not in namespace")
        await self._delete(stored, "delete request from REST API")
        return before

    async def DeleteAllInstances(
        self,
        request: instance_service_pb2.DeleteAllInstancesRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.DeleteAllInstancesResponse:
        namespace = await self._delete_all_namespace(request)
        reply = instance_service_pb2.DeleteAllInstancesResponse()
        async for stored in self._instances.all():
            instance = stored.record.instance
            if can_see(namespace, instance.namespace):
                reply.uuids.append(instance.uuid)
                if instance.state != states.DELETED:
                    with contextlib.suppress(errors.NotFound):  # deleted meanwhile: fine
                        await self._delete(stored, "delete request via delete all from REST API")
        return reply

    async def _delete(self, stored: StoredInstance, audit: str) -> None:
        """Delete an instance (see `deletion.py`): a placed one goes to
        `delete-wait` for its node agent, an unplaced one ends at once. Its
        state event is recorded only by the writer that changed the state,
        so the history tells one story; the events travel in the write's
        outbox entry."""
        uuid = stored.record.instance.uuid
        if not stored.record.instance.node:
            if not await self._finisher.finish(stored, asking=True, audit=audit):
                raise errors.NotFound("instance not found")  # purged meanwhile
            return
        recorded = self._outbox.hold()

        def ask(record: records_pb2.InstanceRecord) -> None:
            nonlocal recorded
            recorded = self._outbox.hold()  # this attempt's: the state it finds
            recorded.events.audit(uuid, audit)
            if record.instance.state != states.DELETE_WAIT:
                record_state(recorded.events, uuid, states.DELETE_WAIT)
            ask_deletion(record)

        await self._instances.update(stored, ask, also=lambda: [recorded.entry()])
        self._outbox.send(recorded)

    async def _delete_all_namespace(
        self, request: instance_service_pb2.DeleteAllInstancesRequest
    ) -> str:
        """The namespace delete-all empties, by reference §8's rules and order."""
        given = request.namespace if request.HasField("namespace") else None
        exists = given is not None and await self._namespaces.get(given) is not None
        return namespace_rules.delete_all_target(caller().namespace, given, exists, request.confirm)

    async def ListInstanceInterfaces(
        self,
        request: instance_service_pb2.ListInstanceInterfacesRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.ListInstanceInterfacesResponse:
        stored = await self._lookup.resolve(request.ref)
        return instance_service_pb2.ListInstanceInterfacesResponse(
            interfaces=stored.record.instance.interfaces
        )

    async def AddInstanceInterface(
        self,
        request: instance_service_pb2.AddInstanceInterfaceRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_pb2.Interface:
        return await self._hotplug.add(request)

    async def GetInstanceMetadata(
        self,
        request: instance_service_pb2.GetInstanceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.GetInstanceMetadataResponse:
        metadata = await self._metadata.get(request.ref)
        return instance_service_pb2.GetInstanceMetadataResponse(metadata=metadata)

    async def SetInstanceMetadata(
        self,
        request: instance_service_pb2.SetInstanceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._metadata.set(request.ref, request.key, request.value)

    async def DeleteInstanceMetadata(
        self,
        request: instance_service_pb2.DeleteInstanceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._metadata.delete(request.ref, request.key)

    async def RebootSoft(
        self, request: instance_service_pb2.RebootSoftRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power.change(request.ref, Operation.POWER_OPERATION_REBOOT_SOFT)

    async def RebootHard(
        self, request: instance_service_pb2.RebootHardRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power.change(request.ref, Operation.POWER_OPERATION_REBOOT_HARD)

    async def PowerOff(
        self, request: instance_service_pb2.PowerOffRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power.change(request.ref, Operation.POWER_OPERATION_POWER_OFF)

    async def PowerOn(
        self, request: instance_service_pb2.PowerOnRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power.change(request.ref, Operation.POWER_OPERATION_POWER_ON)

    async def Pause(
        self, request: instance_service_pb2.PauseRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power.change(request.ref, Operation.POWER_OPERATION_PAUSE)

    async def Unpause(
        self, request: instance_service_pb2.UnpauseRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power.change(request.ref, Operation.POWER_OPERATION_UNPAUSE)

    async def GetConsoleData(
        self,
        request: instance_service_pb2.GetConsoleDataRequest,
        context: grpc.aio.ServicerContext,
    ) -> httpbody_pb2.HttpBody:
        return await self._console.read(request)

    async def ClearConsoleData(
        self,
        request: instance_service_pb2.ClearConsoleDataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._console.clear(request.ref)

    async def GetVdiConsoleHelper(
        self,
        request: instance_service_pb2.GetVdiConsoleHelperRequest,
        context: grpc.aio.ServicerContext,
    ) -> httpbody_pb2.HttpBody:
        return await self._graphics.helper(request.ref)

    async def GetScreenshot(
        self,
        request: instance_service_pb2.GetScreenshotRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.GetScreenshotResponse:
        return await self._graphics.screenshot(request.ref)

    async def CreateConsoleTicket(
        self,
        request: instance_service_pb2.CreateConsoleTicketRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.ConsoleTicket:
        return await self._browser_console.ticket(request)

    async def ConsoleStream(
        self,
        request_iterator: AsyncIterator[instance_service_pb2.ConsoleStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[instance_service_pb2.ConsoleStreamResponse]:
        async for reply in self._browser_console.stream(request_iterator, context):
            yield reply

    async def ExecuteInAgent(
        self,
        request: instance_service_pb2.ExecuteInAgentRequest,
        context: grpc.aio.ServicerContext,
    ) -> agent_operation_pb2.AgentOperation:
        deadline = request.deadline_seconds if request.HasField("deadline_seconds") else None
        return await self._agent.execute(request.ref, request.command_line, deadline)

    async def GetFromAgent(
        self,
        request: instance_service_pb2.GetFromAgentRequest,
        context: grpc.aio.ServicerContext,
    ) -> agent_operation_pb2.AgentOperation:
        deadline = request.deadline_seconds if request.HasField("deadline_seconds") else None
        return await self._agent.get(request.ref, request.path, deadline)

    async def PutToAgent(
        self,
        request: instance_service_pb2.PutToAgentRequest,
        context: grpc.aio.ServicerContext,
    ) -> agent_operation_pb2.AgentOperation:
        deadline = request.deadline_seconds if request.HasField("deadline_seconds") else None
        mode = json_format.MessageToDict(request.mode) if request.HasField("mode") else None
        return await self._agent.put(request.ref, request.blob_uuid, request.path, mode, deadline)

    async def ListAgentOperations(
        self,
        request: instance_service_pb2.ListAgentOperationsRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.ListAgentOperationsResponse:
        found = await self._agent.list(request.ref, all=request.all)
        return instance_service_pb2.ListAgentOperationsResponse(operations=found)

    async def GetAgentOperation(
        self,
        request: instance_service_pb2.GetAgentOperationRequest,
        context: grpc.aio.ServicerContext,
    ) -> agent_operation_pb2.AgentOperation:
        return await self._agent.read(request.uuid)

    async def DeleteAgentOperation(
        self,
        request: instance_service_pb2.DeleteAgentOperationRequest,
        context: grpc.aio.ServicerContext,
    ) -> agent_operation_pb2.AgentOperation:
        return await self._agent.delete(request.uuid)

    async def SnapshotInstance(
        self,
        request: instance_service_pb2.SnapshotInstanceRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.SnapshotInstanceResponse:
        return await self._snapshots.take(request)

    async def ListInstanceSnapshots(
        self,
        request: instance_service_pb2.ListInstanceSnapshotsRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.ListInstanceSnapshotsResponse:
        return await self._snapshots.listing(request)

    async def WatchInstances(
        self, request: instance_service_pb2.WatchInstancesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[instance_service_pb2.WatchInstancesResponse]:
        async for reply in self._observation.watch_all(request):
            yield reply

    async def WatchInstance(
        self, request: instance_service_pb2.WatchInstanceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[instance_service_pb2.WatchInstanceResponse]:
        async for reply in self._observation.watch_one(request):
            yield reply

    async def ListInstanceEvents(
        self,
        request: instance_service_pb2.ListInstanceEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.ListInstanceEventsResponse:
        return await self._observation.list_events(request)

    async def WatchInstanceEvents(
        self,
        request: instance_service_pb2.WatchInstanceEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[instance_service_pb2.WatchInstanceEventsResponse]:
        async for reply in self._observation.watch_events(request):
            yield reply
