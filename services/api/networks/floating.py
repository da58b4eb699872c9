"""Floating addresses of interfaces (other-apis §1.11, §2): an address of
the floating pool recorded on the NIC (`floating`) and reserved in the pool
(type `floating`, user `["networkinterface", <uuid>]`), both in one etcd
transaction, so neither ever exists without the other. The node hosting the
instance maps the address to the NIC's own (node_agent/nat.py)."""

from __future__ import annotations

import random
import time

from google.protobuf import empty_pb2
from sfmesh.v1 import records_pb2

from services.api.clients.events import NETWORK, Events
from services.api.networks.lookup import NetworkLookup
from services.api.networks.store import Held, NetworkStore
from services.common import errors, instance_states
from services.common.addresses import FLOATING, address_key, reservation
from services.common.instance_store import InstanceStore, StoredInstance, interface_of
from services.common.store import Put

ATTEMPTS = 5  # writes raced by other writers before giving up


def floating_put(address: str, interface_uuid: str, now: float) -> Put:
    """The create-only reservation of `address` for an interface."""
    held = reservation(address, "floating", ["networkinterface", interface_uuid], now)
    return Put(address_key(FLOATING, address), held.SerializeToString(), 0)


async def float_interface(
    instances: InstanceStore,
    networks: NetworkStore,
    stored: StoredInstance,
    interface_uuid: str,
    rng: random.Random,
) -> tuple[str, bool]:
    """Give the interface a floating address unless it has one: (the
    address, whether this call took it). 507 when the pool is full."""
    for _ in range(ATTEMPTS):
        record = _copy(stored)
        nic = interface_of(record, interface_uuid)
        if record.instance.state == instance_states.DELETED:
            raise errors.Conflict("interface is deleted", reason="INTERFACE_DELETED")
        if nic.HasField("floating"):
            return nic.floating, False
        nic.floating = await networks.draw_floating(set(), rng)
        if await instances.replace(
            stored, record, floating_put(nic.floating, interface_uuid, time.time())
        ):
            return nic.floating, True
        stored = await _again(instances, stored)
    raise errors.Unavailable("the floating pool kept changing; try again")


async def defloat_interface(
    instances: InstanceStore, networks: NetworkStore, stored: StoredInstance, interface_uuid: str
) -> str:
    """Take the interface's floating address back, if it has one (a deleted
    instance gave its addresses back already); returns it, or ""."""
    for _ in range(ATTEMPTS):
        record = _copy(stored)
        nic = interface_of(record, interface_uuid)
        if not nic.HasField("floating") or record.instance.state == instance_states.DELETED:
            return ""
        floating = nic.floating
        release = await networks.release_of(
            Held(address_key(FLOATING, nic.floating), FLOATING, ("networkinterface", nic.uuid))
        )
        nic.ClearField("floating")
        if await instances.replace(stored, record, *([release] if release else [])):
            return floating
        stored = await _again(instances, stored)
    raise errors.Unavailable("the interface kept changing; try again")


class Floating:
    """FloatInterface and DefloatInterface, with their network events."""

    def __init__(
        self,
        lookup: NetworkLookup,
        instances: InstanceStore,
        networks: NetworkStore,
        events: Events,
        rng: random.Random,
    ) -> None:
        self._lookup = lookup
        self._instances = instances
        self._networks = networks
        self._events = events
        self._rng = rng

    async def float_address(self, interface_uuid: str) -> empty_pb2.Empty:
        """A floating address now (507 when the pool is full); the node
        hosting the instance maps it. Floating again keeps the address."""
        stored, nic = await self._lookup.interface(interface_uuid)
        network = await self._networks.get(nic.network_uuid)
        if network is None:
            raise errors.NotFound("interface network not found")
        if not network.record.network.provide_nat:
            raise errors.Conflict(
                "interface network does not provide NAT, so it cannot float",
                reason="NETWORK_WITHOUT_NAT",
            )
        floating, taken = await float_interface(
            self._instances, self._networks, stored, nic.uuid, self._rng
        )
        if taken:
            extra = {"floating": floating, "inner": nic.ipv4, "interface": nic.uuid}
            self._events.audit(nic.network_uuid, "adding floating ip", extra, kind=NETWORK)
        return empty_pb2.Empty()

    async def defloat_address(self, interface_uuid: str) -> empty_pb2.Empty:
        """Gives the floating address back; fine when there is none."""
        stored, nic = await self._lookup.interface(interface_uuid)
        floating = await defloat_interface(self._instances, self._networks, stored, nic.uuid)
        if floating:
            extra = {"floating": floating, "inner": nic.ipv4, "interface": nic.uuid}
            self._events.audit(nic.network_uuid, "removing floating", extra, kind=NETWORK)
        return empty_pb2.Empty()


def _copy(stored: StoredInstance) -> records_pb2.InstanceRecord:
    record = records_pb2.InstanceRecord()
    record.CopyFrom(stored.record)
    return record


async def _again(instances: InstanceStore, stored: StoredInstance) -> StoredInstance:
    fresh = await instances.get(stored.record.instance.uuid)
    if fresh is None:
        raise errors.NotFound("interface not found")
    return fresh
