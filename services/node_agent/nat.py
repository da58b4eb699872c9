"""NAT from a network's namespace to the outside, on one node. A veth joins
the namespace to the node's egress bridge: its inner end holds the network's
egress address on this node, drawn from the floating pool, and the default
route goes to the pool's router (its first host). An nftables table inside
the namespace masquerades the network's block behind the egress address and
forwards nothing else but replies, so the outside cannot reach the guests.
A floated NIC's floating address sits on the same veth (a /32) and maps
both ways to the NIC's address: the outside reaches that guest, and its
traffic leaves from the floating address.

The namespace is the data plane's own, so its one table is ours to replace
whole; the outer veth end is the only thing put on the egress bridge."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from services.common.addresses import first_host
from services.node_agent.commands import DataPlaneError, delete_link, link_exists, run

TABLE = "sfmesh"


@dataclass(frozen=True)
class Egress:
    """How this node reaches the outside."""

    bridge: str
    """An existing bridge on the node, on the floating pool's segment."""
    pool: ipaddress.IPv4Network
    """The floating pool; its first host is the router to the outside."""

    @property
    def router(self) -> ipaddress.IPv4Address:
        """Where the namespaces' default routes go."""
        return first_host(self.pool)


def ruleset(
    block: ipaddress.IPv4Network,
    inner: str,
    egress_inner: str,
    floats: Mapping[str, str] | None = None,
) -> str:
    """The namespace's nftables table, replacing any older one in the same
    transaction; `floats` maps floating addresses to NICs' addresses. Pure."""
    pairs = sorted((floats or {}).items())
    dnat = "".join(f"    ip daddr {outer} dnat to {guest}\n" for outer, guest in pairs)
    snat = "".join(
        f'    oifname "{egress_inner}" ip saddr {guest} snat to {outer}\n' for outer, guest in pairs
    )
    return (
        f"table ip {TABLE}\n"
        f"delete table ip {TABLE}\n"
        f"table ip {TABLE} {{\n"
        "  chain prerouting {\n"
        "    type nat hook prerouting priority dstnat; policy accept;\n"
        f"{dnat}"
        "  }\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f"{snat}"
        f'    oifname "{egress_inner}" ip saddr {block} masquerade\n'
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy drop;\n"
        "    ct state established,related accept\n"
        f'    iifname "{inner}" oifname "{egress_inner}" accept\n'
        f'    iifname "{egress_inner}" oifname "{inner}" ct status dnat accept\n'
        "  }\n"
        "}\n"
    )


async def ensure_nat(
    netns: str,
    inner: str,
    egress_outer: str,
    egress_inner: str,
    block: ipaddress.IPv4Network,
    egress: Egress,
    address: str,
    floats: Mapping[str, str],
) -> None:
    """Masquerade `block` out of `netns` behind `address` (in the pool), and
    map `floats`."""
    if not await link_exists(egress.bridge):
        raise DataPlaneError(f"the egress bridge {egress.bridge} does not exist")
    if not await link_exists(egress_outer):
        await run(
            "ip", "link", "add", egress_outer, "type", "veth",
            "peer", "name", egress_inner, "netns", netns,
        )  # fmt: skip
    await run("ip", "link", "set", egress_outer, "master", egress.bridge, "up")
    wanted = f"{address}/{egress.pool.prefixlen}"
    current = await _addresses(netns, egress_inner)
    if wanted not in current:
        for old in current:
            if not old.endswith("/32"):  # floating addresses stay
                await run("ip", "-n", netns, "addr", "del", old, "dev", egress_inner)
        await run("ip", "-n", netns, "addr", "add", wanted, "dev", egress_inner)
    await run("ip", "-n", netns, "link", "set", egress_inner, "up")
    await run("ip", "-n", netns, "route", "replace", "default", "via", str(egress.router))
    await run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    await set_floats(netns, inner, egress_inner, block, floats)


async def set_floats(
    netns: str,
    inner: str,
    egress_inner: str,
    block: ipaddress.IPv4Network,
    floats: Mapping[str, str],
) -> None:
    """Map exactly `floats` (floating address -> NIC address) on a network
    whose NAT `ensure_nat` made."""
    current = {a for a in await _addresses(netns, egress_inner) if a.endswith("/32")}
    wanted = {f"{outer}/32" for outer in floats}
    for address in sorted(wanted - current):
        await run("ip", "-n", netns, "addr", "add", address, "dev", egress_inner)
    for address in sorted(current - wanted):
        await run("ip", "-n", netns, "addr", "del", address, "dev", egress_inner)
    rules = ruleset(block, inner, egress_inner, floats)
    await run("ip", "netns", "exec", netns, "nft", "-f", "-", stdin=rules)


async def _addresses(netns: str, interface: str) -> list[str]:
    """The IPv4 addresses (CIDR) of an interface in `netns`."""
    listing = await run("ip", "-n", netns, "-4", "-o", "addr", "show", "dev", interface)
    return [line.split()[3] for line in listing.splitlines() if " inet " in line]


async def remove_nat(netns: str, egress_outer: str, egress_inner: str) -> None:
    """Undo `ensure_nat`. The egress veth goes last: while it exists, NAT
    may be partly there; once it is gone, nothing of it is."""
    if await link_exists(egress_inner, netns):
        await run(
            "ip", "netns", "exec", netns, "nft", "-f", "-",
            stdin=f"table ip {TABLE}\ndelete table ip {TABLE}\n",
        )  # fmt: skip
        await run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    await delete_link(egress_outer)
