"""The six power operations of InstanceService (reference §1.9, §3.3).

Each answers 406 unless the instance is `created`, records its audit event,
and is carried out by the node agent hosting the instance. Node agents arrive
with the "Real VMs" issue; until one hosts the instance, a `created` instance
(which only a node agent can produce) would get 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import empty_pb2
from sfmesh.v1 import instance_pb2, instance_service_pb2

from services.api.events import Events
from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import StoredInstance
from services.common.wire import wire_name


def check_ready(instance: instance_pb2.Instance) -> None:
    """Power operations need a `created` instance. Pure."""
    if instance.state != states.CREATED:
        state = wire_name(instance_pb2.InstanceState.DESCRIPTOR, instance.state)
        raise errors.NotReady(f"instance {instance.uuid} is not ready ({state})")


class PowerOperations:
    """Mixed into the instance servicer, which provides `_resolve` and `_events`."""

    _events: Events
    _resolve: Callable[[str], Awaitable[StoredInstance]]

    async def _power(self, ref: str, label: str) -> empty_pb2.Empty:
        instance = (await self._resolve(ref)).record.instance
        check_ready(instance)
        self._events.audit(instance.uuid, f"{label} request from REST API")
        raise errors.Unavailable(
            f"no node agent serves node {instance.node or '(none)'} yet",
            reason="NO_NODE_AGENT",
        )

    async def RebootSoft(
        self, request: instance_service_pb2.RebootSoftRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, "soft reboot")

    async def RebootHard(
        self, request: instance_service_pb2.RebootHardRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, "hard reboot")

    async def PowerOff(
        self, request: instance_service_pb2.PowerOffRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, "power off")

    async def PowerOn(
        self, request: instance_service_pb2.PowerOnRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, "power on")

    async def Pause(
        self, request: instance_service_pb2.PauseRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, "pause")

    async def Unpause(
        self, request: instance_service_pb2.UnpauseRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._power(request.ref, "unpause")
