"""Instance NICs at create (instances reference §4.8), and hot-plugged
(`instances/hotplug.py`): each networkspec's
network is resolved and checked, an address reserved (the one asked for, or
a free one at random) and a MAC chosen. The reservations are create-only
writes that join the create's one transaction, so two creates can never take
the same address, and a refused create takes none."""

from __future__ import annotations

import ipaddress
import random
import time
import uuid as uuid_module
from collections.abc import Sequence
from dataclasses import dataclass

from sfmesh.v1 import instance_pb2, network_service_pb2

from services.api.networks import ipam
from services.api.networks.floating import floating_put
from services.api.networks.lookup import resolve_network
from services.api.networks.store import Held, NetworkStore
from services.common import errors
from services.common.addresses import FLOATING, address_key, mac_key, pick_free, reservation
from services.common.store import Put
from services.common.wire import wire_name

NO_ADDRESS = ("", "none")


@dataclass(frozen=True)
class PlannedNics:
    """The interfaces of a new instance and the writes that reserve them."""

    interfaces: list[instance_pb2.Interface]
    reservations: list[Put]


def random_mac(rng: random.Random) -> str:
    """A locally administered MAC, 02:00:00:xx:xx:xx (reference §1.10). Pure."""
    return "02:00:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))


def pick_mac(spec: instance_pb2.NetworkSpec, taken: set[str], rng: random.Random) -> str:
    """The spec's MAC (lower case; validation checked its form), or a random
    one not in `taken`. Pure."""
    if spec.HasField("macaddress") and spec.macaddress:
        return spec.macaddress.lower()
    while (mac := random_mac(rng)) in taken:
        pass
    return mac


def network_ref(spec: instance_pb2.NetworkSpec) -> str:
    """The network a spec names (a UUID or a name); 400 when it names none
    (reference §4.8 step 2). Pure."""
    if not spec.network_uuid:
        raise errors.InvalidArgument("network specification is missing network_uuid")
    return spec.network_uuid


def wanted_address(block: ipaddress.IPv4Network, spec: instance_pb2.NetworkSpec) -> str | None:
    """The address a spec asks for: None for a random one, "" for none. Pure."""
    if not spec.HasField("address"):
        return None
    if spec.address.strip().lower() in NO_ADDRESS:
        return ""
    try:
        address = ipaddress.IPv4Address(spec.address.strip())
    except ValueError as exc:
        raise errors.InvalidArgument(f"address {spec.address} is not an IPv4 address") from exc
    if address not in block:
        raise errors.InvalidArgument(
            "network specification requests an address outside the range of the network"
        )
    return str(address)


async def plan_nics(
    networks: NetworkStore,
    caller_namespace: str,
    target_namespace: str,
    instance_uuid: str,
    specs: Sequence[instance_pb2.NetworkSpec],
    rng: random.Random,
    *,
    first_order: int = 0,
) -> PlannedNics:
    """Check every spec in the reference's order, then reserve: 400 ambiguous
    name or address outside the block, 404 unknown network, 406 network not
    ready, 404 network of another namespace, 409 address in use, 507 full.
    The NICs are numbered from `first_order` (an instance's next NIC, for a
    hot-plug)."""
    plan = PlannedNics([], [])
    claimed: dict[str, set[str]] = {}
    macs: dict[str, set[str]] = {}  # MACs known in use on each network
    listed: set[str] = set()  # networks whose MACs were read
    floating: set[str] = set()  # drawn for earlier NICs of this create
    now = time.time()
    for order, spec in enumerate(specs):
        ref = network_ref(spec)
        stored = await resolve_network(networks, caller_namespace, ref, f"network {ref} not found")
        network = stored.record.network
        block = ipam.parse_netblock(network.netblock)
        wanted = wanted_address(block, spec)
        if network.state != network_service_pb2.NETWORK_STATE_CREATED:
            state = wire_name(network_service_pb2.NetworkState.DESCRIPTOR, network.state)
            raise errors.NotReady(f"network {network.uuid} is not ready ({state})")
        if network.namespace != target_namespace:
            raise errors.NotFound(f"network {network.uuid} does not exist")
        if network.uuid not in claimed:
            held = await networks.addresses(network.uuid)
            claimed[network.uuid] = {a.reservation.address for a in held}
        in_use = macs.setdefault(network.uuid, set())
        if spec.HasField("macaddress") and spec.macaddress and network.uuid not in listed:
            in_use |= await networks.macs(network.uuid)  # drawn MACs rarely clash: no list
            listed.add(network.uuid)
        taken = claimed[network.uuid]
        if wanted and wanted in taken:
            raise errors.Conflict(f"address {wanted} in use", reason="ADDRESS_IN_USE")
        address = pick_free(block, taken, rng) if wanted is None else wanted
        mac = pick_mac(spec, macs[network.uuid], rng)
        if mac in macs[network.uuid]:
            raise errors.Conflict(
                f"MAC address {mac} in use on network {network.uuid}", reason="MAC_IN_USE"
            )
        macs[network.uuid].add(mac)
        plan.reservations.append(
            Put(
                mac_key(network.uuid, mac),
                reservation(mac, "mac", ["instance", instance_uuid], now).SerializeToString(),
                0,
            )
        )
        interface = instance_pb2.Interface(
            uuid=str(uuid_module.uuid4()),
            state=instance_pb2.INTERFACE_STATE_INITIAL,
            network_uuid=network.uuid,
            instance_uuid=instance_uuid,
            macaddr=mac,
            order=first_order + order,
            model=spec.model or instance_pb2.NIC_MODEL_VIRTIO,
            version=1,
        )
        interface.metadata.SetInParent()
        if address:
            interface.ipv4 = address
            taken.add(address)
            held_by = reservation(address, "instance", ["instance", instance_uuid], now)
            plan.reservations.append(
                Put(address_key(network.uuid, address), held_by.SerializeToString(), 0)
            )
        if spec.float:
            if not network.provide_nat:
                raise errors.Conflict(
                    f"network {network.uuid} does not provide NAT, so NICs on it cannot float",
                    reason="NETWORK_WITHOUT_NAT",
                )
            interface.floating = await networks.draw_floating(floating, rng)
            floating.add(interface.floating)
            plan.reservations.append(floating_put(interface.floating, interface.uuid, now))
        plan.interfaces.append(interface)
    return plan


def held_addresses(instance: instance_pb2.Instance) -> list[Held]:
    """Every reservation an instance's NICs hold: their MACs and addresses,
    held by the instance, and their floating addresses, held by each NIC.
    Pure."""
    holder = ("instance", instance.uuid)
    held = [
        Held(mac_key(nic.network_uuid, nic.macaddr), nic.network_uuid, holder)
        for nic in instance.interfaces
    ]
    held += [
        Held(address_key(nic.network_uuid, nic.ipv4), nic.network_uuid, holder)
        for nic in instance.interfaces
        if nic.HasField("ipv4")
    ]
    held += [
        Held(address_key(FLOATING, nic.floating), FLOATING, ("networkinterface", nic.uuid))
        for nic in instance.interfaces
        if nic.HasField("floating")
    ]
    return held
