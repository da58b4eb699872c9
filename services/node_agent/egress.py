"""This node's egress addresses: one address of the floating pool for each
network that provides NAT while its data plane is on this node. Each is a
reservation in the pool (`/sfmesh/v1/address/floating/<ipv4>`, type
`gateway`, user `["network", <uuid>]`, its comment naming this node), taken
with a create-only write, found again after a restart, and given back when
the network leaves this node."""

from __future__ import annotations

import ipaddress
import random
import time

from sfmesh.v1 import network_service_pb2, records_pb2

from services.common import errors
from services.common.addresses import FLOATING, address_key, pick_free
from services.common.store import Delete, Put, Store

ATTEMPTS = 5  # draws before giving up when other writers keep taking them


class EgressAddresses:
    """Reservations of egress addresses for this node's NAT networks."""

    def __init__(self, store: Store, node: str, pool: ipaddress.IPv4Network) -> None:
        self._store = store
        self._pool = pool
        self._comment = f"egress on node {node}"
        self._rng = random.SystemRandom()

    async def hold(self, network_uuid: str) -> str:
        """The network's egress address on this node, reserved if need be.
        Raises errors.InsufficientResources when the pool is full."""
        for _ in range(ATTEMPTS):
            held = await self._reservations()
            for address, reservation in held.items():
                if self._mine(reservation, network_uuid):
                    return address
            router = str(self._pool.network_address + 1)
            address = pick_free(self._pool, {*held, router}, self._rng)
            record = records_pb2.AddressRecord(
                reservation=network_service_pb2.AddressReservation(
                    address=address,
                    comment=self._comment,
                    type="gateway",
                    user=["network", network_uuid],
                    when=time.time(),
                )
            )
            put = Put(address_key(FLOATING, address), record.SerializeToString(), 0)
            if await self._store.commit([put]):
                return address
        raise errors.Unavailable("the floating pool kept changing; try again")

    async def release(self, network_uuid: str) -> None:
        """Give back the network's egress address on this node, if any."""
        doomed = [
            Delete(address_key(FLOATING, address))
            for address, reservation in (await self._reservations()).items()
            if self._mine(reservation, network_uuid)
        ]
        if doomed:
            await self._store.commit(doomed)

    def _mine(self, reservation: network_service_pb2.AddressReservation, network: str) -> bool:
        return reservation.comment == self._comment and list(reservation.user) == [
            "network",
            network,
        ]

    async def _reservations(self) -> dict[str, network_service_pb2.AddressReservation]:
        found = {}
        async for item in self._store.list_prefix(address_key(FLOATING, "")):
            reservation = records_pb2.AddressRecord.FromString(item.value).reservation
            found[reservation.address] = reservation
        return found
