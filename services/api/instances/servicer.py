"""InstanceService: each RPC checks, calls the domain, and answers.

Errors are raised as `services.common.errors` and mapped once by the request
interceptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid

import grpc
from google.protobuf import empty_pb2, json_format
from sfmesh.v1 import (
    instance_pb2,
    instance_service_pb2,
    instance_service_pb2_grpc,
    records_pb2,
)

from services.api import sizes
from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.clients.scheduler import Scheduler
from services.api.instances import idempotency, validation
from services.api.instances.cache import UNSURE, InstanceCache
from services.api.instances.console import ConsoleOperations
from services.api.instances.deletion import Finisher, ask_deletion
from services.api.instances.idempotency import IdempotencyKeys
from services.api.instances.observation import Observation
from services.api.instances.power import PowerOperations
from services.api.metadata import rules as metadata
from services.api.namespaces import rules as namespace_rules
from services.api.namespaces.store import NamespaceStore
from services.api.networks.nics import PlannedNics, plan_nics
from services.api.networks.store import NetworkStore
from services.api.visibility import SYSTEM, as_uuid, can_see
from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.interceptors import caller, request_id
from services.common.store import Put
from services.common.wire import wire_name

PowerStateEnum = instance_pb2.PowerState.DESCRIPTOR
NIC_ATTEMPTS = 8
"""Creates with NICs retried when a drawn address or MAC was taken meanwhile
(a busy network near full makes such draws collide often)."""
NIC_RETRY_JITTER = 0.005
"""Up to this many seconds, times the attempt, between two attempts."""


def visible(stored: StoredInstance | None) -> StoredInstance:
    """`stored` when the caller may see it; 404 when it is absent or not theirs."""
    if stored is None or not can_see(caller().namespace, stored.record.instance.namespace):
        raise errors.NotFound("instance not found")
    return stored


def state_name(state: int) -> str:
    """An instance state's wire string."""
    return wire_name(instance_pb2.InstanceState.DESCRIPTOR, state)


class InstanceServicer(
    PowerOperations,
    ConsoleOperations,
    Observation,
    instance_service_pb2_grpc.InstanceServiceServicer,
):
    """The instance API over etcd."""

    def __init__(
        self,
        instances: InstanceStore,
        namespaces: NamespaceStore,
        events: Events,
        keys: IdempotencyKeys,
        limits: validation.Limits,
        scheduler: Scheduler,
        node_agents: NodeAgents,
        networks: NetworkStore,
        finisher: Finisher,
        cache: InstanceCache,
    ) -> None:
        self._cache = cache
        self._networks = networks
        self._finisher = finisher
        self._rng = random.SystemRandom()
        self._keys = keys
        self._scheduler = scheduler
        self._node_agents = node_agents
        self._instances = instances
        self._namespaces = namespaces
        self._events = events
        self._limits = limits

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
                reply.instances.append(instance)
                if len(reply.instances) == request.page_size:
                    reply.next_page_token = instance.uuid
                    break
        return reply

    async def GetInstance(
        self, request: instance_service_pb2.GetInstanceRequest, context: grpc.aio.ServicerContext
    ) -> instance_pb2.Instance:
        canonical = as_uuid(request.ref)
        copied = UNSURE if canonical is None else self._cache.get(canonical)
        if copied is UNSURE:
            return (await self._resolve(request.ref)).record.instance
        return visible(copied).record.instance

    async def CreateInstance(
        self,
        request: instance_service_pb2.CreateInstanceRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_pb2.Instance:
        namespace = await self._target_namespace(request)
        instance = validation.build_instance(
            request, uuid=str(uuid.uuid4()), namespace=namespace, limits=self._limits
        )
        now = time.time()
        claim: list[Put] = []
        retry_key = request.idempotency_key if request.HasField("idempotency_key") else ""
        if retry_key:
            digest = idempotency.request_hash(request)
            earlier = await self._keys.earlier(namespace, retry_key, digest, now)
            if earlier.instance_uuid is not None:
                return await self._first_created(earlier.instance_uuid)
            claim.append(
                IdempotencyKeys.claim(namespace, retry_key, digest, instance.uuid, now, earlier)
            )
        nics = await self._plan_nics(request, namespace, instance)
        placement = await self._scheduler.place(instance, request_id())
        instance.node = placement.node
        written = False
        try:
            for attempt in range(NIC_ATTEMPTS):
                if attempt:  # a random address was taken meanwhile: draw again
                    await asyncio.sleep(self._rng.uniform(0, NIC_RETRY_JITTER * attempt))
                    nics = await self._plan_nics(request, namespace, instance)
                del instance.interfaces[:]
                instance.interfaces.extend(nics.interfaces)
                record = records_pb2.InstanceRecord(
                    instance=instance, created_at=now, create_request_id=request_id()
                )
                written = await self._instances.create(record, *claim, *nics.reservations)
                if written or not nics.reservations:
                    break
                if (
                    claim
                    and (await self._keys.earlier(namespace, retry_key, digest, now)).instance_uuid
                ):
                    break  # not a draw that clashed: another create with this key won
        finally:
            if not written:
                await self._scheduler.release(placement)
        if not written:
            if claim:  # another create with this key won the race: answer its instance
                earlier = await self._keys.earlier(namespace, retry_key, digest, now)
                if earlier.instance_uuid is not None:
                    return await self._first_created(earlier.instance_uuid)
            raise errors.Aborted("a concurrent create got in the way; try again")
        self._record_creation(instance)
        return instance

    async def _plan_nics(
        self,
        request: instance_service_pb2.CreateInstanceRequest,
        namespace: str,
        instance: instance_pb2.Instance,
    ) -> PlannedNics:
        return await plan_nics(
            self._networks,
            caller().namespace,
            namespace,
            instance.uuid,
            request.network,
            self._rng,
        )

    async def _first_created(self, uuid: str) -> instance_pb2.Instance:
        """The instance a retried create's first attempt made."""
        stored = await self._instances.get(uuid)
        if stored is None:
            raise errors.Conflict(
                f"the instance {uuid} this Idempotency-Key created has been purged",
                reason="IDEMPOTENCY_TARGET_PURGED",
            )
        return stored.record.instance

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
        so the history tells one story."""
        uuid = stored.record.instance.uuid
        if not stored.record.instance.node:
            if not await self._finisher.finish(stored, asking=True, audit=audit):
                raise errors.NotFound("instance not found")  # purged meanwhile
            return
        was = stored.record.instance.state

        def ask(record: records_pb2.InstanceRecord) -> None:
            nonlocal was
            was = record.instance.state
            ask_deletion(record)

        await self._instances.update(stored, ask)
        self._events.audit(uuid, audit)
        if was != states.DELETE_WAIT:
            self._events.attribute_set(uuid, "state", state_name(states.DELETE_WAIT))

    async def ListInstanceInterfaces(
        self,
        request: instance_service_pb2.ListInstanceInterfacesRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.ListInstanceInterfacesResponse:
        stored = await self._resolve(request.ref)
        return instance_service_pb2.ListInstanceInterfacesResponse(
            interfaces=stored.record.instance.interfaces
        )

    async def GetInstanceMetadata(
        self,
        request: instance_service_pb2.GetInstanceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> instance_service_pb2.GetInstanceMetadataResponse:
        stored = await self._resolve(request.ref)
        return instance_service_pb2.GetInstanceMetadataResponse(
            metadata=stored.record.instance.metadata
        )

    async def SetInstanceMetadata(
        self,
        request: instance_service_pb2.SetInstanceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored = await self._resolve(request.ref)
        value = json_format.MessageToDict(request.value) if request.HasField("value") else None
        metadata.check_entry(request.key, value)

        def store_value(record: records_pb2.InstanceRecord) -> None:
            before = record.ByteSize()
            metadata.put_entry(record.instance.metadata, request.key, request.value)
            sizes.check_record_growth(before, record)

        uuid = stored.record.instance.uuid
        self._events.audit(
            uuid, "set metadata key request from REST API", {"key": request.key, "value": value}
        )
        record = await self._instances.update(stored, store_value)
        self._events.attribute_set(
            uuid, "metadata", json_format.MessageToDict(record.instance.metadata)
        )
        return empty_pb2.Empty()

    async def DeleteInstanceMetadata(
        self,
        request: instance_service_pb2.DeleteInstanceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored = await self._resolve(request.ref)
        if not request.key:
            raise errors.InvalidArgument("no key specified")
        uuid = stored.record.instance.uuid
        self._events.audit(uuid, "delete metadata key request from REST API", {"key": request.key})
        if request.key in stored.record.instance.metadata.fields:

            def drop_key(record: records_pb2.InstanceRecord) -> None:
                record.instance.metadata.fields.pop(request.key, None)

            record = await self._instances.update(stored, drop_key)
            self._events.attribute_set(
                uuid, "metadata", json_format.MessageToDict(record.instance.metadata)
            )
        return empty_pb2.Empty()

    async def _delete_all_namespace(
        self, request: instance_service_pb2.DeleteAllInstancesRequest
    ) -> str:
        """The namespace delete-all empties, by reference §8's rules and order."""
        given = request.namespace if request.HasField("namespace") else None
        exists = given is not None and await self._namespaces.get(given) is not None
        return namespace_rules.delete_all_target(caller().namespace, given, exists, request.confirm)

    def _record_creation(self, instance: instance_pb2.Instance) -> None:
        """The events of a new record (reference §7.3, steps 1 to 5)."""
        summary = {
            "name": instance.name,
            "namespace": instance.namespace,
            "cpus": instance.cpus,
            "memory": instance.memory,
            "version": instance.version,
        }
        self._events.audit(instance.uuid, "db record created", summary)
        self._events.attribute_set(instance.uuid, "state", state_name(instance.state))
        self._events.attribute_set(
            instance.uuid,
            "power_state",
            {"power_state": wire_name(PowerStateEnum, instance.power_state)},
        )
        self._events.audit(instance.uuid, "create request from REST API")
        if instance.metadata.fields:
            self._events.attribute_set(
                instance.uuid, "metadata", json_format.MessageToDict(instance.metadata)
            )

    async def _target_namespace(self, request: instance_service_pb2.CreateInstanceRequest) -> str:
        """The namespace a create goes to, which must exist and admit the caller."""
        own = caller().namespace
        target = request.namespace if request.HasField("namespace") and request.namespace else own
        record = await self._namespaces.get(target)
        if record is None:
            raise errors.NotFound("namespace not found")
        if target != own and own != SYSTEM and own not in record.trust:
            raise errors.NotFound("namespace not found")  # not trusted: as if absent
        return target

    async def _resolve(self, ref: str) -> StoredInstance:
        """The instance `ref` names (UUID or name), visible to the caller."""
        namespace = caller().namespace
        canonical = as_uuid(ref)
        if canonical is not None:
            return visible(await self._instances.get(canonical))
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
