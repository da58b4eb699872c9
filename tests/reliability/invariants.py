"""What must hold of a mesh once it has settled, read from etcd and libvirt
directly (not through the services under test)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import libvirt
from sfmesh.v1 import instance_pb2, records_pb2

from devmesh.mesh import Mesh
from services.common import instance_states as states
from services.common.store import Store, kind_prefix
from services.common.wire import wire_name
from services.node_agent.naming import instance_of

TRANSIENT = frozenset({states.INITIAL, states.PREFLIGHT, states.CREATING, states.DELETE_WAIT})
"""States an instance only passes through: none may stay in one."""
POWER_ON = instance_pb2.POWER_STATE_ON


def state_name(record: records_pb2.InstanceRecord) -> str:
    """An instance's state as REST shows it (`delete-wait`)."""
    return wire_name(states.S.DESCRIPTOR, record.instance.state)


@dataclass(frozen=True)
class Holding:
    """One address or MAC key and the holder its reservation names."""

    key: str
    holder: tuple[str, ...]


@dataclass(frozen=True)
class Snapshot:
    """The mesh's instances and reservations in etcd, and its node's domains."""

    instances: dict[str, records_pb2.InstanceRecord]
    holdings: list[Holding]
    domains: dict[str, bool]
    """Instance uuid -> whether its domain runs, for this node's domains."""

    def live(self, uuid: str) -> bool:
        """Whether `uuid` is an instance not yet deleted."""
        record = self.instances.get(uuid)
        return record is not None and record.instance.state != states.DELETED

    def unconverged(self) -> dict[str, str]:
        """Instances still in a transient state, or in error without a reason."""
        found = {}
        for uuid, record in self.instances.items():
            is_error = "error" in state_name(record)
            if record.instance.state in TRANSIENT or (
                is_error and not record.instance.error_message
            ):
                found[uuid] = state_name(record)
        return found

    def orphans(self) -> list[str]:
        """Domains of this node whose instance is not live."""
        return sorted(uuid for uuid in self.domains if not self.live(uuid))

    def without_domain(self) -> list[str]:
        """Instances `created` and powered on whose domain does not run."""
        return sorted(
            uuid
            for uuid, record in self.instances.items()
            if record.instance.state == states.CREATED
            and record.instance.power_state == POWER_ON
            and not self.domains.get(uuid, False)
        )

    def leaks(self) -> list[str]:
        """Address and MAC keys held by an instance that is not live."""
        return sorted(
            f"{holding.key} -> {'/'.join(holding.holder)}"
            for holding in self.holdings
            if holding.holder[:1] == ("instance",) and not self.live(holding.holder[1])
        )

    def missing_keys(self) -> list[str]:
        """A live instance's NIC whose MAC or address key does not name it."""
        held = {holding.key: holding.holder for holding in self.holdings}
        missing = []
        for uuid, record in self.instances.items():
            if not self.live(uuid):
                continue
            for nic in record.instance.interfaces:
                wanted = [f"mac/{nic.network_uuid}/{nic.macaddr}"]
                if nic.HasField("ipv4"):
                    wanted.append(f"address/{nic.network_uuid}/{nic.ipv4}")
                missing += [
                    f"{uuid}: {key}" for key in wanted if held.get(key) != ("instance", uuid)
                ]
        return missing


def snapshot(mesh: Mesh) -> Snapshot:
    """Read the mesh's state now."""
    instances, holdings = asyncio.run(_read_etcd(f"127.0.0.1:{mesh.ports.etcd_client}"))
    return Snapshot(instances, holdings, _domains(mesh.node_name))


async def _read_etcd(address: str) -> tuple[dict[str, records_pb2.InstanceRecord], list[Holding]]:
    store = Store(address)
    try:
        instances = {}
        async for item in store.list_prefix(kind_prefix("instance")):
            record = records_pb2.InstanceRecord.FromString(item.value)
            instances[record.instance.uuid] = record
        holdings = []
        for kind in ("address", "mac"):
            async for item in store.list_prefix(kind_prefix(kind)):
                reservation = records_pb2.AddressRecord.FromString(item.value).reservation
                name = item.key.decode().removeprefix("/sfmesh/v1/")
                holdings.append(Holding(name, tuple(reservation.user)))
        return instances, holdings
    finally:
        await store.close()


def _domains(node: str) -> dict[str, bool]:
    conn = libvirt.open("qemu:///system")
    try:
        running = {d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
        found = {}
        for domain in conn.listAllDomains():
            uuid = instance_of(node, domain.name())
            if uuid is not None:
                found[uuid] = domain.name() in running
        return found
    finally:
        conn.close()


def settled(mesh: Mesh, timeout: float) -> tuple[Snapshot, float]:
    """The first snapshot with every instance converged, no orphan domain and
    no live instance without its domain, within `timeout` seconds (else the
    last one read); and the seconds it took."""
    start = time.monotonic()
    while True:
        found = snapshot(mesh)
        done = not (found.unconverged() or found.orphans() or found.without_domain())
        if done or time.monotonic() - start > timeout:
            return found, round(time.monotonic() - start, 1)
        time.sleep(0.5)
