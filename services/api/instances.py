"""InstanceService: each RPC checks, calls the domain, and answers.

Errors are raised as `services.common.errors` and mapped once by the request
interceptor.
"""

from __future__ import annotations

import time
import uuid

import grpc
from sfmesh.v1 import instance_pb2, instance_service_pb2, instance_service_pb2_grpc, records_pb2

from services.api import validation
from services.api.store import InstanceStore, NamespaceStore, StoredInstance
from services.api.visibility import as_uuid, can_see
from services.common import errors
from services.common import instance_states as states
from services.common.interceptors import caller, request_id


class InstanceServicer(instance_service_pb2_grpc.InstanceServiceServicer):
    """The instance API over etcd."""

    def __init__(
        self, instances: InstanceStore, namespaces: NamespaceStore, limits: validation.Limits
    ) -> None:
        self._instances = instances
        self._namespaces = namespaces
        self._limits = limits

    async def ListInstances(
        self, request: instance_service_pb2.ListInstancesRequest, context: grpc.aio.ServicerContext
    ) -> instance_service_pb2.ListInstancesResponse:
        namespace = caller().namespace
        reply = instance_service_pb2.ListInstancesResponse()
        async for stored in self._instances.all():
            instance = stored.record.instance
            if not can_see(namespace, instance.namespace):
                continue
            if request.all or instance.state in states.ACTIVE:
                reply.instances.append(instance)
        return reply

    async def GetInstance(
        self, request: instance_service_pb2.GetInstanceRequest, context: grpc.aio.ServicerContext
    ) -> instance_pb2.Instance:
        return (await self._resolve(request.ref)).record.instance

    async def CreateInstance(
        self,
        request: instance_service_pb2.CreateInstanceRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_pb2.Instance:
        namespace = await self._target_namespace(request)
        instance = validation.build_instance(
            request, uuid=str(uuid.uuid4()), namespace=namespace, limits=self._limits
        )
        if request.network:
            # No network exists until the networks issue lands.
            raise errors.NotFound(f"network {request.network[0].network_uuid} not found")
        record = records_pb2.InstanceRecord(
            instance=instance, created_at=time.time(), create_request_id=request_id()
        )
        if not await self._instances.create(record):
            raise errors.AlreadyExists(f"instance {instance.uuid} already exists")
        return instance

    async def DeleteInstance(
        self, request: instance_service_pb2.DeleteInstanceRequest, context: grpc.aio.ServicerContext
    ) -> instance_pb2.Instance:
        stored = await self._resolve(request.ref)
        if request.HasField("namespace") and await self._namespaces.get(request.namespace) is None:
            raise errors.NotFound("namespace not found")
        before = stored.record.instance
        if before.state == states.DELETED:
            raise errors.NotFound("instance not found")
        if request.HasField("namespace") and request.namespace != before.namespace:
            raise errors.NotFound("instance not in namespace")
        await self._mark_deleted(stored)
        return before

    async def _mark_deleted(self, stored: StoredInstance) -> None:
        """Move an unplaced instance to deleted, retrying lost compare-and-swaps."""
        while True:
            record = records_pb2.InstanceRecord()
            record.CopyFrom(stored.record)
            instance = record.instance
            if not states.may_transition(instance.state, states.DELETED):
                raise errors.Conflict(
                    f"instance {instance.uuid} cannot be deleted from its current state"
                )
            instance.state = states.DELETED
            instance.power_state = instance_pb2.POWER_STATE_OFF
            record.deleted_at = time.time()
            if await self._instances.replace(stored, record):
                return
            fresh = await self._instances.get(instance.uuid)
            if fresh is None or fresh.record.instance.state == states.DELETED:
                return
            stored = fresh

    async def _target_namespace(self, request: instance_service_pb2.CreateInstanceRequest) -> str:
        """The namespace a create goes to, which must exist and admit the caller."""
        own = caller().namespace
        target = request.namespace if request.HasField("namespace") and request.namespace else own
        if target != own and own != "system":
            raise errors.NotFound("namespace not found")
        if await self._namespaces.get(target) is None:
            raise errors.NotFound("namespace not found")
        return target

    async def _resolve(self, ref: str) -> StoredInstance:
        """The instance `ref` names (UUID or name), visible to the caller."""
        namespace = caller().namespace
        canonical = as_uuid(ref)
        if canonical is not None:
            stored = await self._instances.get(canonical)
            if stored is None or not can_see(namespace, stored.record.instance.namespace):
                raise errors.NotFound("instance not found")
            return stored
        matches = [
            stored
            async for stored in self._instances.all()
            if stored.record.instance.name == ref
            and stored.record.instance.state in states.ACTIVE
            and can_see(namespace, stored.record.instance.namespace)
        ]
        if not matches:
            raise errors.NotFound("instance not found")
        if len(matches) > 1:
            raise errors.InvalidArgument(
                f'multiple instances have the name "{ref}" in namespace "{namespace}"'
            )
        return matches[0]
