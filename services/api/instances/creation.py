"""CreateInstance (reference §4, §7.3): the target namespace, the checks of
`validation`, an `Idempotency-Key`, the disks' bases and the NVRAM template
(`artifacts.bases`: 404 before anything is written), the NICs, a placement
by the scheduler, then one etcd transaction that writes the record with
every reservation, any new image artifact, the NVRAM template blob's
new reference and the create's events (an outbox entry,
`clients/outbox.py`), retried with fresh draws when a random address was
taken (or an artifact made, or the template blob changed) meanwhile.

A retried create that finds its first attempt's instance records nothing:
the first attempt's events were written with it, and its outbox entry
delivers them even if that attempt's process died right after its commit."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from sfmesh.v1 import instance_pb2, instance_service_pb2, records_pb2

from services.api.artifacts.bases import Bases, NvramTemplate, Resolved
from services.api.clients.events import ARTIFACT
from services.api.clients.outbox import Held, Outbox
from services.api.clients.scheduler import Scheduler
from services.api.instances import idempotency, validation
from services.api.instances.history import record_creation
from services.api.instances.idempotency import IdempotencyKeys
from services.api.namespaces.store import NamespaceStore
from services.api.networks.nics import PlannedNics, plan_nics
from services.api.networks.store import NetworkStore
from services.api.visibility import SYSTEM
from services.common import errors, tracing
from services.common.instance_store import InstanceStore
from services.common.interceptors import caller, request_id
from services.common.store import Put

NIC_ATTEMPTS = 8
"""Creates with NICs retried when a drawn address or MAC was taken meanwhile
(a busy network near full makes such draws collide often)."""
NIC_RETRY_JITTER = 0.005
"""Up to this many seconds, times the attempt, between two attempts."""


class Creation:
    """Makes new instances."""

    def __init__(
        self,
        instances: InstanceStore,
        namespaces: NamespaceStore,
        outbox: Outbox,
        keys: IdempotencyKeys,
        limits: validation.Limits,
        scheduler: Scheduler,
        networks: NetworkStore,
        bases: Bases,
    ) -> None:
        self._instances = instances
        self._namespaces = namespaces
        self._outbox = outbox
        self._keys = keys
        self._limits = limits
        self._scheduler = scheduler
        self._networks = networks
        self._bases = bases
        self._rng = random.SystemRandom()

    async def create(
        self, request: instance_service_pb2.CreateInstanceRequest
    ) -> instance_pb2.Instance:
        """The new instance, or the one a retried create's first attempt made."""
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
        resolved = await self._bases.resolve(request.disk, caller().namespace, namespace)
        template = await self._nvram_template(request, namespace)
        nics = await self._plan_nics(request, namespace, instance)
        placement = await self._scheduler.place(instance, request_id())
        instance.node = placement.node
        written = False
        try:
            for attempt in range(NIC_ATTEMPTS):
                if attempt:  # a random address was taken meanwhile: draw again
                    await asyncio.sleep(self._rng.uniform(0, NIC_RETRY_JITTER * attempt))
                    nics = await self._plan_nics(request, namespace, instance)
                    # or an image artifact planned here was made by another create
                    resolved = await self._bases.resolve(
                        request.disk, caller().namespace, namespace
                    )
                    template = await self._nvram_template(request, namespace)  # its revision
                del instance.interfaces[:]
                instance.interfaces.extend(nics.interfaces)
                held: list[Put] = []
                if template is not None:
                    instance.nvram_template = template.blob_uuid
                    held.append(template.write)
                record = records_pb2.InstanceRecord(
                    instance=instance,
                    created_at=now,
                    create_request_id=request_id(),
                    create_traceparent=tracing.traceparent(),
                    disk_sources=resolved.sources,
                )
                if template is not None:
                    record.nvram_blob_uuid = template.blob_uuid
                recorded = self._recorded(instance, resolved)
                written = await self._instances.create(
                    record, *claim, *nics.reservations, *resolved.writes, *held, recorded.entry()
                )
                if written or not (nics.reservations or resolved.writes or held):
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
        self._outbox.send(recorded)
        return instance

    def _recorded(self, instance: instance_pb2.Instance, resolved: Resolved) -> Held:
        """The events of a create: the instance's, and those of the image
        artifacts it makes."""
        held = self._outbox.hold()
        record_creation(held.events, instance)
        for made in resolved.created:
            held.events.audit(made, "creation request from REST API", kind=ARTIFACT)
            held.events.attribute_set(made, "state", "initial", kind=ARTIFACT)
        return held

    async def _nvram_template(
        self, request: instance_service_pb2.CreateInstanceRequest, namespace: str
    ) -> NvramTemplate | None:
        """The blob the NVRAM template names, with the write of the
        instance's reference on it; None without a template."""
        if not request.nvram_template:
            return None
        return await self._bases.nvram_template(
            request.nvram_template, caller().namespace, namespace
        )

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
