"""The etcd records of networks: `/sfmesh/v1/network/<uuid>` (a
`NetworkRecord`), `/sfmesh/v1/address/<network uuid>/<ipv4>` (an
`AddressRecord`, present exactly while the address is taken) and
`/sfmesh/v1/vxlan/<id>` (the network holding that VXLAN id). A reservation
is a create-only write, so two writers can never take the same address or id."""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sfmesh.v1 import network_service_pb2, records_pb2

from services.common import errors
from services.common.addresses import FLOATING, address_key, first_host, mac_key, pick_free
from services.common.store import Delete, Put, Store, key, kind_prefix

RELEASE_ATTEMPTS = 3


@dataclass(frozen=True)
class Released:
    """What a release did."""

    complete: bool
    """False when the reservations kept changing and some may remain."""
    finished: list[str]
    """Networks in `delete-wait` that this release let go."""


class Held(NamedTuple):
    """A reservation some object holds (an address, or a MAC): its key, its
    network ("floating" for the pool), and the holder as it names it."""

    key: bytes
    network_uuid: str
    user: tuple[str, str]


@dataclass(frozen=True)
class StoredNetwork:
    """A network record with the revision it was read at."""

    record: records_pb2.NetworkRecord
    mod_revision: int


def vxlan_key(vxlan_id: int) -> bytes:
    """The key of one VXLAN id."""
    return key("vxlan", str(vxlan_id))


class NetworkStore:
    """Networks, their address reservations and VXLAN ids in etcd."""

    def __init__(self, store: Store, floating_pool: ipaddress.IPv4Network | None = None) -> None:
        """`floating_pool`: the outside addresses interfaces float on (None: none)."""
        self._store = store
        self._floating_pool = floating_pool

    async def draw_floating(self, taken: set[str], rng: random.Random) -> str:
        """A free address of the floating pool, not in `taken` either (its
        first host is the router, never drawn); 507 when there is none, 409
        when the mesh has no pool at all (no retry could succeed)."""
        if self._floating_pool is None:
            raise errors.Conflict("this mesh has no floating pool", reason="NO_FLOATING_POOL")
        held = {a.reservation.address for a in await self.addresses(FLOATING)}
        router = str(first_host(self._floating_pool))
        return pick_free(self._floating_pool, held | taken | {router}, rng)

    async def get(self, uuid: str) -> StoredNetwork | None:
        """One network, or None."""
        item = await self._store.get(key("network", uuid))
        if item is None:
            return None
        return StoredNetwork(records_pb2.NetworkRecord.FromString(item.value), item.mod_revision)

    async def all(self) -> AsyncIterator[StoredNetwork]:
        """Every network record, in UUID order, read in pages."""
        async for item in self._store.list_prefix(kind_prefix("network")):
            yield StoredNetwork(records_pb2.NetworkRecord.FromString(item.value), item.mod_revision)

    async def create(
        self, record: records_pb2.NetworkRecord, held: Sequence[records_pb2.AddressRecord]
    ) -> bool:
        """Write a new network with its own reservations and its VXLAN id in
        one transaction; False, with nothing written, when the id is taken."""
        network = record.network
        puts = [
            Put(key("network", network.uuid), record.SerializeToString(), 0),
            Put(vxlan_key(network.vxlan_id), network.uuid.encode(), 0),
            *(
                Put(address_key(network.uuid, a.reservation.address), a.SerializeToString(), 0)
                for a in held
            ),
        ]
        return await self._store.commit(puts)

    async def instances_on(self, network_uuid: str) -> list[str]:
        """The uuids of the live instances with a NIC on a network (they hold
        its MAC keys), in uuid order."""
        found = set()
        async for item in self._store.list_prefix(mac_key(network_uuid, "")):
            user = records_pb2.AddressRecord.FromString(item.value).reservation.user
            if len(user) == 2 and user[0] == "instance":
                found.add(user[1])
        return sorted(found)

    async def macs(self, network_uuid: str) -> set[str]:
        """The MACs in use on a network."""
        prefix = mac_key(network_uuid, "")
        return {item.key[len(prefix) :].decode() async for item in self._store.list_prefix(prefix)}

    async def addresses(self, network_uuid: str) -> list[records_pb2.AddressRecord]:
        """Every reservation of a network."""
        prefix = address_key(network_uuid, "")
        return [
            records_pb2.AddressRecord.FromString(item.value)
            async for item in self._store.list_prefix(prefix)
        ]

    async def update(
        self, stored: StoredNetwork, change: Callable[[records_pb2.NetworkRecord], None]
    ) -> records_pb2.NetworkRecord:
        """Apply `change` with compare-and-swap (see `Store.update`)."""
        return await self._store.update(
            key("network", stored.record.network.uuid),
            stored.record,
            stored.mod_revision,
            change,
            lambda: errors.NotFound("network not found"),
        )

    async def remove(self, stored: StoredNetwork) -> bool:
        """Delete a network record as read; False when it changed in between."""
        at = key("network", stored.record.network.uuid)
        return await self._store.commit([Delete(at, stored.mod_revision)])

    async def finish_delete(self, stored: StoredNetwork) -> records_pb2.NetworkRecord:
        """Mark a network deleted (compare-and-swap), then give back its
        addresses and VXLAN id."""

        def deleted(record: records_pb2.NetworkRecord) -> None:
            if record.network.state == network_service_pb2.NETWORK_STATE_DELETED:
                raise errors.NotFound("network not found")
            record.network.state = network_service_pb2.NETWORK_STATE_DELETED
            record.network.ClearField("floating_gateway")
            record.deleted_at = time.time()

        record = await self.update(stored, deleted)
        network = record.network
        doomed = [
            Delete(address_key(network.uuid, a.reservation.address))
            for a in await self.addresses(network.uuid)
        ]
        doomed += [
            Delete(item.key) async for item in self._store.list_prefix(mac_key(network.uuid, ""))
        ]
        await self._store.commit([*doomed, Delete(vxlan_key(network.vxlan_id))])
        return record

    async def finish_if_unused(self, network_uuid: str) -> bool:
        """Delete a network in `delete-wait` once no instance holds an address
        on it; whether this call did (False when another got there first)."""
        stored = await self.get(network_uuid)
        if stored is None or stored.record.network.state != (
            network_service_pb2.NETWORK_STATE_DELETE_WAIT
        ):
            return False
        remaining = await self.addresses(network_uuid)
        if any(a.reservation.type == "instance" for a in remaining):
            return False
        try:
            await self.finish_delete(stored)
        except errors.NotFound:  # finished by another meanwhile
            return False
        return True

    async def release_of(self, entry: Held) -> Delete | None:
        """The write that gives `entry` back while its reservation, as read
        now, still names its holder; None when it does not."""
        item = await self._store.get(entry.key)
        if item is None:
            return None
        holder = records_pb2.AddressRecord.FromString(item.value).reservation.user
        return Delete(item.key, item.mod_revision) if tuple(holder) == entry.user else None

    async def releases(self, held: Sequence[Held]) -> list[Delete]:
        """The writes that give back each of `held` still naming its holder,
        as read now (each compares its key's revision): a transaction of
        them never frees a reservation someone else took since."""
        return [d for entry in held if (d := await self.release_of(entry)) is not None]

    async def finish_unused(self, held: Sequence[Held]) -> list[str]:
        """After `held` went back: the networks of `held` in `delete-wait`
        that no instance holds an address on any more, which this call
        deleted."""
        networks = sorted({entry.network_uuid for entry in held})
        return [uuid for uuid in networks if await self.finish_if_unused(uuid)]

    async def release(self, held: Sequence[Held]) -> Released:
        """Give back reservations, each only while it still names its holder
        (so giving back twice, or late, never frees one someone else took
        since); networks waiting for them then go."""
        complete = not held
        for _ in range(RELEASE_ATTEMPTS):
            doomed = await self.releases(held)
            if not doomed or await self._store.commit(doomed):
                complete = True
                break
        return Released(complete, await self.finish_unused(held))
