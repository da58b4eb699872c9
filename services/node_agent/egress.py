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
from collections.abc import Callable

from sfmesh.v1 import network_service_pb2, records_pb2

from services.common import errors
from services.common.addresses import FLOATING, address_key, first_host, pick_free, reservation
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
            for address, (held_by, _) in held.items():
                if self._mine(held_by) == network_uuid:
                    return address
            address = pick_free(self._pool, {*held, str(first_host(self._pool))}, self._rng)
            record = reservation(
                address, "gateway", ["network", network_uuid], time.time(), self._comment
            )
            put = Put(address_key(FLOATING, address), record.SerializeToString(), 0)
            if await self._store.commit([put]):
                return address
        raise errors.Unavailable("the floating pool kept changing; try again")

    async def release(self, network_uuid: str) -> None:
        """Give back the network's egress address on this node, if any."""
        await self.release_all_but(lambda network: network != network_uuid)

    async def release_all_but(self, keep: Callable[[str], bool]) -> None:
        """Give back this node's egress addresses of every network `keep`
        refuses (each only as read, so nothing reserved meanwhile goes)."""
        doomed = [
            Delete(address_key(FLOATING, address), revision)
            for address, (held_by, revision) in (await self._reservations()).items()
            if (network := self._mine(held_by)) and not keep(network)
        ]
        if doomed:
            await self._store.commit(doomed)

    def _mine(self, held_by: network_service_pb2.AddressReservation) -> str:
        """The network of one of this node's egress addresses; "" otherwise."""
        user = list(held_by.user)
        ours = held_by.comment == self._comment and len(user) == 2 and user[0] == "network"
        return user[1] if ours else ""

    async def _reservations(
        self,
    ) -> dict[str, tuple[network_service_pb2.AddressReservation, int]]:
        found = {}
        async for item in self._store.list_prefix(address_key(FLOATING, "")):
            held_by = records_pb2.AddressRecord.FromString(item.value).reservation
            found[held_by.address] = (held_by, item.mod_revision)
        return found
