"""NICs plugged into running domains after their create (guest-access §6),
and NICs no record names taken out again.

The api adds a NIC to an instance's record, `initial`, and asks this node
to plug it (`PlugInterface`): the NIC's network is made ready here with its
DHCP pin (`networking.py`), the device attached to the live domain and its
persistent definition (so a power cycle keeps it, as the record does), and
the NIC recorded `created` by compare-and-swap. A refusal undoes what it
did here before answering; the api then withdraws the NIC from the record.

Level-based repair covers what a crash or a lost answer leaves: whenever
the reconciler looks at a created instance, a device whose MAC no NIC of
the record names (a NIC the api withdrew after a plug it no longer waited
for, or whose process died) is unplugged (`remove_strays`), and looked at
again later while any is left (the reconciler's retry). A plug and that
repair hold one lock per instance, and the repair reads the record fresh
from etcd under it, so a device being plugged is never taken for a stray;
the plug itself runs shielded from its caller's cancel, so a deadline never
leaves it half done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from sfmesh.v1 import event_pb2, instance_pb2, records_pb2

from services.common import errors
from services.common import instance_states as states
from services.common.events import EventSink
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.wire import wire_name
from services.node_agent.commands import DataPlaneError
from services.node_agent.domain_xml import NicDevice
from services.node_agent.hypervisor import Hypervisor, HypervisorError
from services.node_agent.keyed_locks import KeyedLocks
from services.node_agent.networking import NetworkGone
from services.node_agent.nic_devices import render_interface

log = logging.getLogger("sfmesh.node_agent.hotplug")

STATUS = event_pb2.EVENT_TYPE_STATUS
MUTATE = event_pb2.EVENT_TYPE_MUTATE
INTERFACE = "networkinterface"
"""The object type of a NIC's own events."""


class Networks(Protocol):
    """What plugging needs of this node's networks (`InstanceNetworking`)."""

    async def attach(self, instance: instance_pb2.Instance, *, revision: int = 0) -> dict[str, str]:
        """Make the instance's networks ready here, pinning exactly its NICs'
        addresses (and, given the record `revision` it was read at, letting go
        of networks it no longer uses); network uuid -> bridge."""
        ...


class Withdrawn(Exception):
    """The NIC is no longer `initial` in the record: the api withdrew it."""


def nic_device(nic: instance_pb2.Interface, bridge: str) -> NicDevice:
    """The device of a NIC on `bridge`. Pure."""
    model = wire_name(instance_pb2.NicModel.DESCRIPTOR, nic.model) if nic.model else "virtio"
    return NicDevice(mac=nic.macaddr, model=model, bridge=bridge)


def without(instance: instance_pb2.Instance, interface_uuid: str) -> instance_pb2.Instance:
    """A copy of `instance` without NIC `interface_uuid`. Pure."""
    copy = instance_pb2.Instance()
    copy.CopyFrom(instance)
    kept = [nic for nic in copy.interfaces if nic.uuid != interface_uuid]
    del copy.interfaces[:]
    copy.interfaces.extend(kept)
    return copy


def strays(domain_macs: set[str], instance: instance_pb2.Instance) -> set[str]:
    """The MACs of a domain's devices that no NIC of the instance names. Pure."""
    return domain_macs - {nic.macaddr.lower() for nic in instance.interfaces}


class Hotplug:
    """Plugs NICs into this node's running domains and removes strays."""

    def __init__(
        self,
        *,
        node: str,
        records: InstanceStore,
        networking: Networks,
        hypervisor: Hypervisor,
        emitter: EventSink,
    ) -> None:
        self._node = node
        self._records = records
        self._networking = networking
        self._hypervisor = hypervisor
        self._emitter = emitter
        self._locks = KeyedLocks()
        """One per instance being plugged or repaired."""

    async def plug(self, instance_uuid: str, interface_uuid: str) -> None:
        """Plug a NIC the record holds `initial` and record it `created`;
        nothing to do for one `created` already. NotFound when the instance
        is not here, NotReady when it is not `created`, Aborted when the NIC
        was withdrawn, Conflict (HYPERVISOR_REFUSED) when the network or
        libvirt refuses: each after undoing what this call did."""
        # Shielded: the caller's deadline must not stop it between the
        # attach and the record (the lock keeps the repair out meanwhile).
        work = asyncio.ensure_future(self._plug(instance_uuid, interface_uuid))
        await asyncio.shield(work)

    async def remove_strays(self, stored: StoredInstance) -> bool:
        """Unplug the devices of a created instance's domain whose MAC no NIC
        of its record names (read fresh from etcd before anything goes);
        whether to look again later: strays remain (a failed unplug, a guest
        slow to let go) or the domain could not be read."""
        uuid = stored.record.instance.uuid
        try:
            macs = await self._hypervisor.interface_macs(uuid)
        except HypervisorError as exc:  # gone meanwhile, libvirt away: the next look
            log.warning(
                "cannot read the domain's NICs: %s", exc, extra={"fields": {"instance": uuid}}
            )
            return True
        if not macs or not strays(macs, stored.record.instance):
            return False
        async with self._locks.hold(uuid):
            fresh = await self._records.get(uuid)
            if fresh is None or fresh.record.instance.state != states.CREATED:
                return False  # the instance moved on: its own path deals with the domain
            try:
                macs = await self._hypervisor.interface_macs(uuid) or set()
            except HypervisorError:
                return True
            for mac in sorted(strays(macs, fresh.record.instance)):
                try:
                    await self._hypervisor.detach_interface(uuid, mac)
                except HypervisorError as exc:
                    log.warning(
                        "cannot unplug a stray interface: %s",
                        exc,
                        extra={"fields": {"instance": uuid, "mac": mac}},
                    )
                    continue
                self._status(uuid, "stray interface unplugged", {"macaddr": mac})
            try:
                left = await self._hypervisor.interface_macs(uuid) or set()
            except HypervisorError:
                return True
            return bool(strays(left, fresh.record.instance))

    async def _plug(self, instance_uuid: str, interface_uuid: str) -> None:
        async with self._locks.hold(instance_uuid):
            stored = await self._records.get(instance_uuid)
            instance = stored.record.instance if stored else None
            if stored is None or instance is None or instance.node != self._node:
                raise errors.NotFound(f"instance {instance_uuid} is not on this node")
            if instance.state != states.CREATED:
                state = wire_name(instance_pb2.InstanceState.DESCRIPTOR, instance.state)
                raise errors.NotReady(f"instance {instance_uuid} is not ready ({state})")
            nic = _nic(instance, interface_uuid)
            if nic.state == instance_pb2.INTERFACE_STATE_CREATED:
                return
            if nic.state != instance_pb2.INTERFACE_STATE_INITIAL:
                raise errors.Aborted(f"interface {interface_uuid} was withdrawn")
            try:
                bridges = await self._networking.attach(instance, revision=stored.mod_revision)
                device = nic_device(nic, bridges[nic.network_uuid])
                await self._hypervisor.attach_interface(
                    instance_uuid, render_interface(device), nic.macaddr
                )
            except (HypervisorError, DataPlaneError, NetworkGone, ValueError) as exc:
                await self._undo(instance, nic, stored.mod_revision)
                raise errors.Conflict(
                    f"cannot plug interface {interface_uuid} into instance {instance_uuid}: {exc}",
                    reason="HYPERVISOR_REFUSED",
                ) from exc
            try:
                await self._records.update(stored, _created(interface_uuid))
            except (Withdrawn, errors.NotFound) as exc:
                await self._undo(instance, nic, stored.mod_revision)
                raise errors.Aborted(
                    f"interface {interface_uuid} was withdrawn while it was plugged"
                ) from exc
        extra = {"interface": nic.uuid, "network_uuid": nic.network_uuid, "macaddr": nic.macaddr}
        self._status(instance_uuid, "interface plugged", extra)
        created = {"value": "created", "attribute": "state"}  # the api's `set attribute` shape
        self._emitter.emit(INTERFACE, nic.uuid, MUTATE, "set attribute", extra=created)

    async def _undo(
        self, instance: instance_pb2.Instance, nic: instance_pb2.Interface, revision: int
    ) -> None:
        """Take back what a plug of the record read at `revision` did here:
        the device, the pin (and the network, when nothing else here uses
        it). Failures are logged: the repair after the api's withdrawal
        tries again."""
        try:
            await self._hypervisor.detach_interface(instance.uuid, nic.macaddr)
        except HypervisorError as exc:
            log.warning("cannot unplug after a failed plug: %s", exc)
        try:
            await self._networking.attach(without(instance, nic.uuid), revision=revision)
        except (DataPlaneError, NetworkGone) as exc:
            log.warning("cannot remove the DHCP pin of a failed plug: %s", exc)

    def _status(self, uuid: str, message: str, extra: dict[str, str]) -> None:
        self._emitter.emit("instance", uuid, STATUS, message, extra=extra)


def _nic(instance: instance_pb2.Instance, interface_uuid: str) -> instance_pb2.Interface:
    for nic in instance.interfaces:
        if nic.uuid == interface_uuid:
            return nic
    raise errors.Aborted(f"interface {interface_uuid} was withdrawn")


def _created(interface_uuid: str) -> Callable[[records_pb2.InstanceRecord], None]:
    """The change that records NIC `interface_uuid` `created`; it raises
    Withdrawn unless the NIC is still `initial` on a created instance."""

    def change(record: records_pb2.InstanceRecord) -> None:
        if record.instance.state != states.CREATED:
            raise Withdrawn
        for nic in record.instance.interfaces:
            if nic.uuid == interface_uuid and nic.state == instance_pb2.INTERFACE_STATE_INITIAL:
                nic.state = instance_pb2.INTERFACE_STATE_CREATED
                return
        raise Withdrawn

    return change
