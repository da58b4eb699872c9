"""Floating addresses of interfaces (other-apis §1.11, §2): an address of
the floating pool recorded on the NIC (`floating`) and reserved in the pool
(type `floating`, user `["networkinterface", <uuid>]`), both in one etcd
transaction, so neither ever exists without the other. The node hosting the
instance maps the address to the NIC's own (node_agent/nat.py)."""

from __future__ import annotations

import random
import time

from sfmesh.v1 import records_pb2

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


def _copy(stored: StoredInstance) -> records_pb2.InstanceRecord:
    record = records_pb2.InstanceRecord()
    record.CopyFrom(stored.record)
    return record


async def _again(instances: InstanceStore, stored: StoredInstance) -> StoredInstance:
    fresh = await instances.get(stored.record.instance.uuid)
    if fresh is None:
        raise errors.NotFound("interface not found")
    return fresh
