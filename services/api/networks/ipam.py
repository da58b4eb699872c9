"""Address management decisions (other-apis §1.2, §1.10). Pure: the
netblock rules and the addresses every network holds for itself;
networks/store.py makes the reservations."""

from __future__ import annotations

import ipaddress

from services.common import errors
from services.common.addresses import first_host

SMALLEST_PREFIX = 29


def parse_netblock(text: str) -> ipaddress.IPv4Network:
    """A network's block: strict IPv4 CIDR, at least a /29 (400 otherwise)."""
    try:
        block = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise errors.InvalidArgument(f"cannot parse netblock: {exc}") from exc
    if not isinstance(block, ipaddress.IPv4Network):
        raise errors.InvalidArgument("only IPv4 netblocks are supported")
    if block.prefixlen > SMALLEST_PREFIX:
        raise errors.InvalidArgument(f"network is below minimum size of /{SMALLEST_PREFIX}")
    return block


def held_by_network(block: ipaddress.IPv4Network) -> list[tuple[str, str]]:
    """(address, type) of what every network reserves for itself: its
    network address, its gateway (index 1) and its broadcast address."""
    return [
        (str(block.network_address), "network"),
        (str(first_host(block)), "gateway"),
        (str(block.broadcast_address), "broadcast"),
    ]
