"""Which destinations an image fetch may connect to. Pure: the caller
resolves names, finds which addresses are this host's, and gathers the
mesh's endpoints; these functions only decide, and say why they refuse.

Two rules, checked on the address a fetch actually connects to:

- The mesh's own endpoints (etcd, the api, scheduler, eventlog, gateway,
  node agents) are always refused. An endpoint on this host (named by a
  loopback, unspecified or local address) is refused at every address of
  this host, since a listener bound to 0.0.0.0 or :: answers on all of them.
- Addresses in the ranges of ``REFUSED_RANGES`` (loopback, private,
  link-local, multicast, reserved, …) are refused unless an allowed network
  of the operator's holds them.

An IPv6 address that stands for an IPv4 one (IPv4-mapped, NAT64's
well-known prefix, 6to4) is judged as that IPv4 address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

SCHEMES = ("http", "https")
"""The only URL schemes an image is fetched over, redirects included."""

_NAT64 = IPv6Network("64:ff9b::/96")


def _ranges(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ip_network(network), kind) for network, kind in rows)


REFUSED_RANGES: tuple[tuple[IPNetwork, str], ...] = _ranges(
    ("0.0.0.0/8", "unspecified (this network)"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/8", "reserved"),
    ("64:ff9b:1::/48", "reserved (local-use NAT64)"),
    ("100::/64", "reserved (discard-only)"),
    ("2001::/23", "reserved (IETF protocol assignments)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "reserved (site-local)"),
    ("ff00::/8", "multicast"),
)
"""Ranges a fetch may not reach unless allowed, first match first, each with
what it is. IPv4-mapped, NAT64 and 6to4 addresses are unwrapped before."""


@dataclass(frozen=True)
class Endpoint:
    """One of the mesh's own listeners."""

    name: str
    """What it is, as a refusal names it: "the mesh's etcd"."""
    address: str
    """host:port as configured or published."""
    port: int
    addresses: frozenset[IPAddress]
    """What its host resolved to."""
    local: bool = False
    """Whether one of ``addresses`` is an address of this host's interfaces
    (loopback and unspecified addresses count without it)."""


@dataclass(frozen=True)
class FetchPolicy:
    """What one fetch is held to."""

    allowed: tuple[IPNetwork, ...] = ()
    """The operator's networks exempt from ``REFUSED_RANGES``."""
    endpoints: tuple[Endpoint, ...] = ()
    """The mesh's endpoints, refused whatever is allowed."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (``127.0.0.0/8,fd00::/8``); raises ValueError."""
    return tuple(ip_network(part.strip()) for part in text.split(",") if part.strip())


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64's
    well-known prefix, 6to4), else the address itself."""
    if isinstance(address, IPv4Address):
        return address
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour or address


def refusal(policy: FetchPolicy, address: IPAddress, port: int, *, local: bool) -> str | None:
    """Why a fetch may not connect to ``address:port``, or None when it may.
    ``local``: the caller found ``address`` on one of this host's interfaces."""
    target = unwrap(address)
    shown = _host_port(address, port)
    here = local or _always_here(target)
    for endpoint in policy.endpoints:
        if endpoint.port != port:
            continue
        if target in _unwrapped(endpoint.addresses):
            return f"{shown} is {endpoint.name}"
        if here and (endpoint.local or any(map(_always_here, _unwrapped(endpoint.addresses)))):
            return f"{shown} is on this host, as is {endpoint.name} ({endpoint.address})"
    if any(target in network for network in policy.allowed):
        return None
    for network, kind in REFUSED_RANGES:
        if target in network:
            unwrapped = f" ({target})" if target != address else ""
            return f"{address}{unwrapped} is in {network} ({kind}), not an allowed image network"
    return None


def _always_here(address: IPAddress) -> bool:
    """Loopback and unspecified addresses reach this host, whatever its interfaces."""
    return address.is_loopback or address.is_unspecified


def _unwrapped(addresses: Iterable[IPAddress]) -> set[IPAddress]:
    return {unwrap(address) for address in addresses}


def _host_port(address: IPAddress, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
