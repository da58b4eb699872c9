"""What a hot-plug (`hotplug.py`) decides without etcd: which instances take
a new NIC, the request's own refusals, the NIC's place, and what withdrawing
one takes back. Pure.

Which answer when the instance cannot take a NIC now (reference §9 quirk 2:
406 makes the client retry, so it is kept for what passes by itself):

| instance | answer |
|---|---|
| `deleted` | 404 `instance not found`, as DELETE answers |
| `initial`, `preflight`, `creating` | 406 `instance <uuid> is not ready (<state>)` |
| `created`, power changing (`transition-to-*`, unknown) | 406 likewise |
| `created`, powered off, paused or crashed | 409 `INSTANCE_NOT_RUNNING` (no live attach) |
| `delete-wait`, `error`, any `*-error` | 409 `INSTANCE_NOT_RUNNING` |
"""

from __future__ import annotations

from sfmesh.v1 import instance_pb2, instance_service_pb2, records_pb2

from services.api.instances.history import state_name
from services.api.instances.validation import check_macs
from services.api.networks.nics import held_addresses, network_ref
from services.api.networks.store import Held
from services.common import errors
from services.common import instance_states as states
from services.common.wire import wire_name

Power = instance_pb2.PowerState
BUILDING = frozenset({states.INITIAL, states.PREFLIGHT, states.CREATING})
STOPPED = {
    Power.POWER_STATE_OFF: "is powered off: power it on",
    Power.POWER_STATE_PAUSED: "is paused: unpause it",
    Power.POWER_STATE_CRASHED: "has crashed: power it on",
}
"""Stable power states no live attach reaches, and what to do about each."""


def check_pluggable(instance: instance_pb2.Instance) -> None:
    """Refuse a hot-plug into an instance that cannot take one now (see the
    module's table). Pure."""
    uuid, state = instance.uuid, instance.state
    if state == states.DELETED:
        raise errors.NotFound("instance not found")
    if state in BUILDING:
        raise errors.NotReady(f"instance {uuid} is not ready ({state_name(state)})")
    if state != states.CREATED:
        raise errors.Conflict(
            f"instance {uuid} is {state_name(state)}: interfaces cannot be added to it",
            reason="INSTANCE_NOT_RUNNING",
        )
    power = instance.power_state
    if power in STOPPED:
        raise errors.Conflict(
            f"instance {uuid} {STOPPED[power]} to add an interface",
            reason="INSTANCE_NOT_RUNNING",
        )
    if power != Power.POWER_STATE_ON:
        name = wire_name(Power.DESCRIPTOR, power) if power else "unknown"
        raise errors.NotReady(f"instance {uuid} is not ready (power state {name})")


def checked_spec(
    request: instance_service_pb2.AddInstanceInterfaceRequest,
) -> instance_pb2.NetworkSpec:
    """The request's networkspec, with its own refusals (400): none given,
    no `network_uuid`, a MAC that is not a unicast MAC. Pure."""
    if not request.HasField("network"):
        raise errors.InvalidArgument("network is required: the interface's networkspec")
    network_ref(request.network)
    check_macs([request.network])
    return request.network


def next_order(instance: instance_pb2.Instance) -> int:
    """The `order` of an instance's next NIC: after its last. Pure."""
    return max((nic.order for nic in instance.interfaces), default=-1) + 1


def check_mac_unused(instance: instance_pb2.Instance, mac: str) -> None:
    """An instance's NICs have MACs of their own, whatever their networks
    (the node finds a NIC's device by its MAC): 409 otherwise. Pure."""
    if any(nic.macaddr == mac for nic in instance.interfaces):
        raise errors.Conflict(
            f"MAC address {mac} in use on instance {instance.uuid}", reason="MAC_IN_USE"
        )


def find_nic(instance: instance_pb2.Instance, interface_uuid: str) -> instance_pb2.Interface | None:
    """The NIC `interface_uuid` of an instance, or None. Pure."""
    for nic in instance.interfaces:
        if nic.uuid == interface_uuid:
            return nic
    return None


def with_nic(
    record: records_pb2.InstanceRecord, nic: instance_pb2.Interface
) -> records_pb2.InstanceRecord:
    """A copy of an instance record with `nic` added last. Pure."""
    copy = records_pb2.InstanceRecord()
    copy.CopyFrom(record)
    copy.instance.interfaces.append(nic)
    return copy


def without_nic(
    record: records_pb2.InstanceRecord, interface_uuid: str
) -> records_pb2.InstanceRecord:
    """A copy of an instance record without NIC `interface_uuid`. Pure."""
    copy = records_pb2.InstanceRecord()
    copy.CopyFrom(record)
    kept = [nic for nic in copy.instance.interfaces if nic.uuid != interface_uuid]
    del copy.instance.interfaces[:]
    copy.instance.interfaces.extend(kept)
    return copy


def held_by_nic(instance_uuid: str, nic: instance_pb2.Interface) -> list[Held]:
    """The reservations one NIC of an instance holds: its MAC and address
    (held by the instance) and its floating address (held by the NIC). Pure."""
    return held_addresses(instance_pb2.Instance(uuid=instance_uuid, interfaces=[nic]))


def withdrawable(nic: instance_pb2.Interface | None) -> bool:
    """Whether a hot-plugged NIC is to be withdrawn: it is still `initial`
    (or `error`); a `created` one was plugged, and a `deleted` one went with
    its instance, addresses and all. Pure."""
    return nic is not None and nic.state in (
        instance_pb2.INTERFACE_STATE_INITIAL,
        instance_pb2.INTERFACE_STATE_ERROR,
    )
