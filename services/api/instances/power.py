"""The six power operations of InstanceService (reference §1.9, §3.3).

Each answers 406 unless the instance is `created`, records its audit event,
and is carried out by the node agent hosting the instance, which answers
once libvirt has acted and the record shows the new power state: 409 when
the hypervisor refuses, 503 when the agent cannot be reached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import empty_pb2
from sfmesh.v1 import instance_pb2, instance_service_pb2, node_agent_service_pb2

from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import StoredInstance
from services.common.interceptors import request_id
from services.common.wire import wire_name

Operation = node_agent_service_pb2.PowerOperation
LABELS = {
    Operation.POWER_OPERATION_REBOOT_SOFT: "soft reboot",
    Operation.POWER_OPERATION_REBOOT_HARD: "hard reboot",
    Operation.POWER_OPERATION_POWER_OFF: "power off",
    Operation.POWER_OPERATION_POWER_ON: "power on",
    Operation.POWER_OPERATION_PAUSE: "pause",
    Operation.POWER_OPERATION_UNPAUSE: "unpause",
}
"""The audit name of each operation."""


def check_ready(instance: instance_pb2.Instance) -> None:
    """Power operations need a `created` instance. Pure."""
    if instance.state != states.CREATED:
        state = wire_name(instance_pb2.InstanceState.DESCRIPTOR, instance.state)
        raise errors.NotReady(f"instance {instance.uuid} is not ready ({state})")


class PowerOperations:
    """Mixed into the instance servicer, which provides `_resolve` and `_events`."""

    _events: Events
    _node_agents: NodeAgents
    _resolve: Callable[[str], Awaitable[StoredInstance]]

    async def _power(self, ref: str, operation: Operation) -> empty_pb2.Empty:
        instance = (await self._resolve(ref)).record.instance
        check_ready(instance)
        label = LABELS[operation]
        self._events.audit(instance.uuid, f"{label} request from REST API")
        try:
            await self._node_agents.change_power(
                instance.node, instance.uuid, operation, request_id()
            )
        except errors.Conflict:
            self._events.audit(instance.uuid, f"{label} failed")
            raise
        return empty_pb2.Empty()

    async def RebootSoft(
        self, request: instance_service_pb2.RebootSoftRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, Operation.POWER_OPERATION_REBOOT_SOFT)

    async def RebootHard(
        self, request: instance_service_pb2.RebootHardRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, Operation.POWER_OPERATION_REBOOT_HARD)

    async def PowerOff(
        self, request: instance_service_pb2.PowerOffRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, Operation.POWER_OPERATION_POWER_OFF)

    async def PowerOn(
        self, request: instance_service_pb2.PowerOnRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, Operation.POWER_OPERATION_POWER_ON)

    async def Pause(
        self, request: instance_service_pb2.PauseRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, Operation.POWER_OPERATION_PAUSE)

    async def Unpause(
        self, request: instance_service_pb2.UnpauseRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, Operation.POWER_OPERATION_UNPAUSE)
