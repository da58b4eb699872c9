"""AddInstanceInterface, `POST /instances/{ref}/interfaces` (guest-access
§6): a NIC hot-plugged into a running instance, or nothing at all.

The api orchestrates, in three steps, each undone when a later one fails:

1. **Reserve** (one etcd transaction, retried with fresh draws as a create
   is): the NIC is planned by the create's own `networks/nics.py` (network
   visible and in the instance's namespace, address asked for or drawn,
   MAC unique on the network, a floating address with `float`), added to
   the instance record `initial`, with its address, MAC and floating
   reservations, its interface index key, a hot-plug key
   (`/sfmesh/v1/hotplug/<interface uuid>`, `HotplugRecord`) and the
   request's events (an outbox entry).
2. **Plug**: the hosting node agent's `PlugInterface` pins the address in
   the network's DHCP there, attaches the device live and to the persistent
   definition, and records the NIC `created` (compare-and-swap), undoing
   its own work before it answers a refusal.
3. **Answer** the NIC, `created`, and drop the hot-plug key.

A refusal or failure of the plug **withdraws** the NIC: the NIC, its
reservations, its index key and the hot-plug key go in one transaction
(only while the NIC is still `initial`: a plug that succeeded after all,
its answer lost, is answered as a success). The node agent then unplugs
any device the record no longer names (`node_agent/hotplug.py`), so a plug
that finished after the api stopped waiting is taken back too.

**Crash safety.** A request whose api died leaves its hot-plug key. Every
replica sweeps them every `SWEEP_INTERVAL`: one older than `GRACE` (longer
than a plug may take) has its NIC withdrawn unless it is `created`, in
which case only the key goes. Shaken Fist deletes the whole instance when a
hot-plug fails (§9 quirk 14); sfmesh leaves it as it was, running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Protocol

from sfmesh.v1 import instance_pb2, instance_service_pb2, records_pb2

from services.api import sizes
from services.api.clients.events import INTERFACE, Events
from services.api.clients.outbox import Held, Outbox
from services.api.instances import hotplug_rules as rules
from services.api.instances.lookup import InstanceLookup
from services.api.networks.nics import plan_nics
from services.api.networks.store import NetworkStore
from services.common import errors
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.interceptors import caller, request_id
from services.common.store import Delete, Put, Store, key, kind_prefix
from services.common.wire import wire_name

log = logging.getLogger("sfmesh.api.hotplug")

KIND = "hotplug"
"""Hot-plugs under way: `/sfmesh/v1/hotplug/<interface uuid>`."""
ATTEMPTS = 8
"""Reservations retried when the instance changed or a drawn address was
taken meanwhile."""
RETRY_JITTER = 0.005
"""Up to this many seconds, times the attempt, between two attempts."""
GRACE = 90.0
"""Seconds a hot-plug key is left to its request before sweeps withdraw its
NIC: past the node agent's deadline (`clients/node_agents.py`
PLUG_DEADLINE, 30 s) with room to spare."""
SWEEP_INTERVAL = 10.0
"""Seconds between two sweeps of a replica."""


class Plugger(Protocol):
    """Asks the node agent hosting an instance to plug one of its NICs
    (`clients/node_agents.py` NodeAgents)."""

    async def plug_interface(
        self, node: str, *, instance_uuid: str, interface_uuid: str, request_id: str
    ) -> None: ...


def hotplug_key(interface_uuid: str) -> bytes:
    """Where a hot-plug under way is recorded."""
    return key(KIND, interface_uuid)


class Hotplug:
    """Adds NICs to running instances, and sweeps the hot-plugs left behind."""

    def __init__(
        self,
        lookup: InstanceLookup,
        instances: InstanceStore,
        networks: NetworkStore,
        store: Store,
        outbox: Outbox,
        events: Events,
        plugger: Plugger,
    ) -> None:
        self._lookup = lookup
        self._instances = instances
        self._networks = networks
        self._store = store
        self._outbox = outbox
        self._events = events
        self._plugger = plugger
        self._rng = random.SystemRandom()

    async def add(
        self, request: instance_service_pb2.AddInstanceInterfaceRequest
    ) -> instance_pb2.Interface:
        """Plug a NIC into the instance `request.ref` names; the NIC, `created`."""
        stored = await self._lookup.resolve(request.ref)
        rules.check_pluggable(stored.record.instance)
        spec = rules.checked_spec(request)
        stored, nic = await self._reserve(stored, spec)
        # Shielded: a caller gone now must not leave the NIC half plugged.
        return await asyncio.shield(self._plug(stored.record.instance, nic))

    async def _plug(
        self, instance: instance_pb2.Instance, nic: instance_pb2.Interface
    ) -> instance_pb2.Interface:
        """Steps 2 and 3, or the withdrawal."""
        try:
            await self._plugger.plug_interface(
                instance.node,
                instance_uuid=instance.uuid,
                interface_uuid=nic.uuid,
                request_id=request_id(),
            )
        except errors.SfmeshError as exc:
            plugged = await self._after_failure(instance.uuid, nic.uuid, str(exc))
            if plugged is None:
                raise
            return plugged  # it was plugged after all: only the answer was lost
        with contextlib.suppress(errors.SfmeshError):  # else the sweep drops it
            await self._store.commit([Delete(hotplug_key(nic.uuid))])
        self._events.audit(instance.uuid, "interface added", _extra(nic))
        nic.state = instance_pb2.INTERFACE_STATE_CREATED
        return nic

    async def sweep(self, older_than: float) -> int:
        """Finish every hot-plug whose key is at least `older_than` seconds
        old: its NIC withdrawn unless plugged, then its key dropped; how many
        NICs this call withdrew. A key that cannot be finished now (unreadable,
        or its withdrawal failed) is logged and left to the next sweep."""
        now, withdrawn = time.time(), 0
        async for item in self._store.list_prefix(kind_prefix(KIND)):
            try:
                withdrawn += await self._sweep_one(item.value, now - older_than)
            except Exception:
                log.exception("cannot finish the hot-plug at %r now; trying again later", item.key)
        return withdrawn

    async def _sweep_one(self, value: bytes, started_before: float) -> bool:
        """Finish one hot-plug key's hot-plug if it started before
        `started_before`; whether its NIC was withdrawn."""
        plug = records_pb2.HotplugRecord.FromString(value)
        if plug.started_at > started_before:
            return False
        reason = "its request did not finish"
        outcome = await self._withdraw(plug.instance_uuid, plug.interface_uuid, reason)
        return outcome is None

    async def run(self) -> None:
        """Sweep every `SWEEP_INTERVAL` until cancelled."""
        while True:
            try:
                await self.sweep(GRACE)
            except errors.SfmeshError as exc:
                log.warning("hot-plug sweep failed (%s); trying again later", exc)
            except Exception:
                log.exception("hot-plug sweep failed; trying again later")
            await asyncio.sleep(SWEEP_INTERVAL)

    async def _reserve(
        self, stored: StoredInstance, spec: instance_pb2.NetworkSpec
    ) -> tuple[StoredInstance, instance_pb2.Interface]:
        """Add the NIC `initial` with its reservations (step 1); the record
        it was added to and the NIC."""
        uuid = stored.record.instance.uuid
        for attempt in range(ATTEMPTS):
            if attempt:  # the instance changed, or a drawn address was taken
                await asyncio.sleep(self._rng.uniform(0, RETRY_JITTER * attempt))
                fresh = await self._instances.get(uuid)
                if fresh is None:
                    raise errors.NotFound("instance not found")
                stored = fresh
            instance = stored.record.instance
            rules.check_pluggable(instance)
            sizes.check_count("network", [*instance.interfaces, spec], sizes.NETWORKS)
            plan = await plan_nics(
                self._networks,
                caller().namespace,
                instance.namespace,
                uuid,
                [spec],
                self._rng,
                first_order=rules.next_order(instance),
            )
            (nic,) = plan.interfaces
            rules.check_mac_unused(instance, nic.macaddr)
            recorded = self._recorded(uuid, nic)
            plug = records_pb2.HotplugRecord(
                instance_uuid=uuid,
                interface_uuid=nic.uuid,
                started_at=time.time(),
                request_id=request_id(),
            )
            record = rules.with_nic(stored.record, nic)
            sizes.check_record_growth(stored.record.ByteSize(), record)
            if await self._instances.replace(
                stored,
                record,
                *plan.reservations,
                Put(key("interface", nic.uuid), uuid.encode(), 0),
                Put(hotplug_key(nic.uuid), plug.SerializeToString(), 0),
                recorded.entry(),
            ):
                self._outbox.send(recorded)
                return StoredInstance(record, 0), nic
        raise errors.Aborted("the instance or its network kept changing; try again")

    def _recorded(self, instance_uuid: str, nic: instance_pb2.Interface) -> Held:
        """The events of a reservation: the request on the instance, the new
        NIC on itself."""
        held = self._outbox.hold()
        held.events.audit(instance_uuid, "add interface request from REST API", _extra(nic))
        held.events.audit(nic.uuid, "db record created", _extra(nic), kind=INTERFACE)
        held.events.attribute_set(nic.uuid, "state", "initial", kind=INTERFACE)
        return held

    async def _after_failure(
        self, instance_uuid: str, interface_uuid: str, message: str
    ) -> instance_pb2.Interface | None:
        """After a plug failed: withdraw its NIC; the NIC when it turned out
        plugged after all. An etcd failure here leaves the withdrawal to the
        sweep."""
        try:
            return await self._withdraw(instance_uuid, interface_uuid, message)
        except errors.SfmeshError as exc:
            log.warning("cannot withdraw a failed hot-plug now (%s); the sweep will", exc)
            return None

    async def _withdraw(
        self, instance_uuid: str, interface_uuid: str, reason: str
    ) -> instance_pb2.Interface | None:
        """Take a hot-plugged NIC back out of its record with everything it
        holds, and drop its hot-plug key, in one transaction; a NIC that was
        plugged (`created`) stays and is answered; None otherwise."""
        plug_key = hotplug_key(interface_uuid)
        for _ in range(ATTEMPTS):
            stored = await self._instances.get(instance_uuid)
            nic = rules.find_nic(stored.record.instance, interface_uuid) if stored else None
            if stored is None or nic is None or not rules.withdrawable(nic):
                await self._store.commit([Delete(plug_key)])
                plugged = nic is not None and nic.state == instance_pb2.INTERFACE_STATE_CREATED
                return nic if plugged else None
            held = rules.held_by_nic(instance_uuid, nic)
            recorded = self._outbox.hold()
            extra = {**_extra(nic), "reason": reason}
            recorded.events.audit(instance_uuid, "add interface failed", extra)
            recorded.events.attribute_set(nic.uuid, "state", "deleted", kind=INTERFACE)
            if await self._instances.replace(
                stored,
                rules.without_nic(stored.record, interface_uuid),
                *await self._networks.releases(held),
                Delete(key("interface", interface_uuid)),
                Delete(plug_key),
                recorded.entry(),
            ):
                self._outbox.send(recorded)
                await self._networks.finish_unused(held)
                return None
        raise errors.Unavailable("the instance kept changing; its hot-plug is withdrawn later")


def _extra(nic: instance_pb2.Interface) -> dict[str, object]:
    """What an event says of a NIC. Pure."""
    extra: dict[str, object] = {
        "interface": nic.uuid,
        "network_uuid": nic.network_uuid,
        "macaddr": nic.macaddr,
        "order": nic.order,
        "model": wire_name(instance_pb2.NicModel.DESCRIPTOR, nic.model),
    }
    if nic.HasField("ipv4"):
        extra["ipv4"] = nic.ipv4
    if nic.HasField("floating"):
        extra["floating"] = nic.floating
    return extra
