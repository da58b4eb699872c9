"""Address reservations shared by the api (instance NICs) and the node
agents (egress addresses on the floating pool): where a reservation lives in
etcd, and how a free address is drawn. A reservation is a create-only write
of its key, so two writers can never take the same address."""

from __future__ import annotations

import ipaddress
import random

from sfmesh.v1 import network_service_pb2, records_pb2

from services.common import errors
from services.common.store import key

FLOATING = "floating"
"""The pool of outside addresses, kept like a network of that uuid."""


def floating_pool(netblock: str) -> ipaddress.IPv4Network | None:
    """The floating pool a `--floating-netblock` setting names ("" for
    none); exits with the reason when it is not an IPv4 CIDR of a /29 or more."""
    if not netblock:
        return None
    try:
        pool = ipaddress.IPv4Network(netblock)
    except ValueError as exc:
        raise SystemExit(f"--floating-netblock {netblock!r} is not an IPv4 CIDR: {exc}") from exc
    if pool.num_addresses < 8:
        raise SystemExit(f"--floating-netblock {pool} is smaller than a /29")
    return pool


def address_key(network_uuid: str, address: str) -> bytes:
    """The key of one reserved address: `/sfmesh/v1/address/<network>/<ipv4>`."""
    return key("address", f"{network_uuid}/{address}")


def mac_key(network_uuid: str, mac: str) -> bytes:
    """The key of one MAC in use on a network: `/sfmesh/v1/mac/<network>/<mac>`."""
    return key("mac", f"{network_uuid}/{mac}")


def pick_free(block: ipaddress.IPv4Network, taken: set[str], rng: random.Random) -> str:
    """A free host address: a few random tries, then a scan from the start
    (507 when the block is full). Pure."""
    hosts = block.num_addresses - 2
    for _ in range(5):
        candidate = str(block.network_address + rng.randrange(1, hosts + 1))
        if candidate not in taken:
            return candidate
    for index in range(1, hosts + 1):
        candidate = str(block.network_address + index)
        if candidate not in taken:
            return candidate
    raise errors.InsufficientResources("No free addresses on network")


def reservation(
    address: str, kind: str, user: list[str], when: float, comment: str = ""
) -> records_pb2.AddressRecord:
    """An address held by `user` ([object type, uuid]) since `when`."""
    return records_pb2.AddressRecord(
        reservation=network_service_pb2.AddressReservation(
            address=address, type=kind, user=user, when=when, comment=comment
        )
    )


def first_host(block: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """A network's gateway, or the floating pool's router. Pure."""
    return block.network_address + 1
