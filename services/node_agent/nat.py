"""NAT from a network's namespace to the outside, on one node. A veth joins
the namespace to the node's egress bridge: its inner end holds the network's
egress address on this node, drawn from the floating pool, and the default
route goes to the pool's router (its first host). An nftables table inside
the namespace masquerades the network's block behind the egress address and
forwards nothing else but replies, so the outside cannot reach the guests.

The namespace is the data plane's own, so its one table is ours to replace
whole; the outer veth end is the only thing put on the egress bridge."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

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
        return self.pool.network_address + 1


def ruleset(block: ipaddress.IPv4Network, inner: str, egress_inner: str) -> str:
    """The namespace's nftables table, replacing any older one in the same
    transaction. Pure."""
    return (
        f"table ip {TABLE}\n"
        f"delete table ip {TABLE}\n"
        f"table ip {TABLE} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "{egress_inner}" ip saddr {block} masquerade\n'
        "  }\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy drop;\n"
        "    ct state established,related accept\n"
        f'    iifname "{inner}" oifname "{egress_inner}" accept\n'
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
) -> None:
    """Masquerade `block` out of `netns` behind `address` (in the pool)."""
    if not await link_exists(egress.bridge):
        raise DataPlaneError(f"the egress bridge {egress.bridge} does not exist")
    if not await link_exists(egress_outer):
        await run(
            "ip", "link", "add", egress_outer, "type", "veth",
            "peer", "name", egress_inner, "netns", netns,
        )  # fmt: skip
    await run("ip", "link", "set", egress_outer, "master", egress.bridge, "up")
    current = await run("ip", "-n", netns, "-4", "-o", "addr", "show", "dev", egress_inner)
    wanted = f"{address}/{egress.pool.prefixlen}"
    if f" {wanted} " not in current:
        await run("ip", "-n", netns, "addr", "flush", "dev", egress_inner)
        await run("ip", "-n", netns, "addr", "add", wanted, "dev", egress_inner)
    await run("ip", "-n", netns, "link", "set", egress_inner, "up")
    await run("ip", "-n", netns, "route", "replace", "default", "via", str(egress.router))
    await run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    rules = ruleset(block, inner, egress_inner)
    await run("ip", "netns", "exec", netns, "nft", "-f", "-", stdin=rules)


async def remove_nat(netns: str, egress_outer: str) -> None:
    """Undo `ensure_nat` (the namespace may be gone already)."""
    await delete_link(egress_outer)
    if await link_exists("lo", netns):
        await run("ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        await run(
            "ip", "netns", "exec", netns, "nft", "-f", "-",
            stdin=f"table ip {TABLE}\ndelete table ip {TABLE}\n",
        )  # fmt: skip
