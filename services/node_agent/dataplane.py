"""A network's data plane on one node: a Linux bridge that guests' taps join,
a network namespace holding the gateway address on a veth whose other end is
on the bridge and, when the network provides DHCP, a dnsmasq inside that
namespace that hands out only the pinned addresses (static mode, DNS off).

With an underlay, the bridge also holds a VXLAN device of the network's id
that floods to every peer node (all-zero FDB entries, MACs learnt), so one
network spans nodes. Every node runs the same gateway for its own guests:
the gateway's veth and the VXLAN device are isolated bridge ports, so one
node's gateway and DHCP never answer another node's guests. The VXLAN socket
lives in the underlay's namespace (where the device is made, before it moves
to the bridge's), which lets an operator keep the underlay apart. With an
egress, a network that provides NAT also reaches the outside (`nat.py`).

Every kernel name comes from `names(node, vxlan_id)`, so several agents on one
machine keep apart and nothing else is ever touched. Each network's dnsmasq
(`dnsmasq.py`) keeps its files in `<root>/<network uuid>/`.

Commands (`commands.py`) run without a shell.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.addresses import first_host
from services.node_agent.commands import (
    DataPlaneError,
    delete_link,
    link_exists,
    links_of_type,
    outcome,
    run,
)
from services.node_agent.dnsmasq import Dnsmasq, hosts_text
from services.node_agent.naming import is_uuid
from services.node_agent.nat import Egress, ensure_nat, remove_nat, set_floats

MAX_VXLAN_ID = 2**24 - 1
VXLAN_PORT = 4789  # IANA's port for VXLAN
VXLAN_OVERHEAD = 50  # bytes of outer Ethernet, IPv4, UDP and VXLAN headers
FLOOD_MAC = "00:00:00:00:00:00"  # the FDB entry for broadcast and unknown MACs
NETNS_DIR = Path("/run/netns")  # where `ip netns add` names namespaces


class NoNetwork(DataPlaneError):
    """This node does not carry a network."""


class NoNat(DataPlaneError):
    """A network has no NAT on this node (no egress here, or no provide_nat)."""


@dataclass(frozen=True)
class NetworkPlan:
    """What a node needs to know of a network to carry it. The methods of
    `DataPlane` raise ValueError for a uuid that is not a canonical uuid, a
    vxlan id out of range or a netblock that is not an IPv4 network of 4+
    addresses."""

    uuid: str
    vxlan_id: int  # 1 .. 2**24-1
    netblock: str  # IPv4 CIDR, e.g. "10.250.0.0/24"
    provide_dhcp: bool
    provide_nat: bool = False


@dataclass(frozen=True)
class Underlay:
    """Where this node's VXLAN endpoint is."""

    address: str
    """The IPv4 address other nodes reach this node's VXLAN at."""
    netns: str = ""
    """The network namespace holding `address`; "" for the agent's own."""
    mtu: int = 1500
    """The underlay's MTU; guests get this less the VXLAN overhead."""

    @property
    def overlay_mtu(self) -> int:
        """The largest frame a guest may send across nodes."""
        return self.mtu - VXLAN_OVERHEAD


@dataclass(frozen=True)
class Names:
    """The kernel names of one network's pieces on one node (15 chars each)."""

    bridge: str  # what guests' taps join
    outer: str  # the veth end on the bridge
    inner: str  # the veth end inside the namespace, holding the gateway
    netns: str  # the network namespace
    vxlan: str  # the VXLAN device on the bridge
    egress_outer: str  # the veth end on the egress bridge
    egress_inner: str  # the veth end inside the namespace, holding the egress address


def node_tag(node: str) -> str:
    """The 6 hex digits of sha256(node) in every name node `node` uses. Pure."""
    return hashlib.sha256(node.encode()).hexdigest()[:6]


def names(node: str, vxlan_id: int) -> Names:
    """The names node `node` uses for network `vxlan_id`: a kind letter, 6 hex
    digits of sha256(node) and the id as 6 hex digits. Pure."""
    if not 1 <= vxlan_id <= MAX_VXLAN_ID:
        raise ValueError(f"vxlan id {vxlan_id} is outside 1..{MAX_VXLAN_ID}")
    suffix = node_tag(node) + f"{vxlan_id:06x}"
    return Names(
        bridge=f"sfb{suffix}",
        outer=f"sfo{suffix}",
        inner=f"sfi{suffix}",
        netns=f"sfn{suffix}",
        vxlan=f"sfx{suffix}",
        egress_outer=f"sfe{suffix}",
        egress_inner=f"sfr{suffix}",
    )


def flood_targets(fdb: str) -> set[str]:
    """The peers in `bridge fdb show dev <vxlan>` output that broadcast and
    unknown frames go to. Pure."""
    targets = set()
    for line in fdb.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == FLOOD_MAC and words[1] == "dst":
            targets.add(words[2])
    return targets


class DataPlane:
    """Builds, updates and tears down the data plane of networks on one node."""

    def __init__(
        self,
        node: str,
        root: Path,
        underlay: Underlay | None = None,
        egress: Egress | None = None,
    ) -> None:
        """`root` holds a folder of dnsmasq files per network (`<state>/networks`);
        without `underlay`, networks stay on this node; without `egress`, no
        network here reaches the outside."""
        self.node = node
        self.root = Path(root)
        self.underlay = underlay
        self.egress = egress
        self._peers: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()  # one change at a time: each is a few quick commands

    async def ensure(
        self,
        plan: NetworkPlan,
        egress_address: str | None = None,
        floats: Mapping[str, str] | None = None,
    ) -> str:
        """Create whatever of the network's pieces is missing, start or stop
        dnsmasq as `plan.provide_dhcp` says, and NAT behind `egress_address`
        (an address of the egress pool) when given, mapping `floats` (see
        `set_floats`). Returns the bridge's name."""
        n = names(self.node, plan.vxlan_id)
        network, gateway = _block(plan)
        dnsmasq = self._dnsmasq(plan)
        async with self._lock:
            if not await link_exists(n.bridge):
                await run(
                    "ip", "link", "add", n.bridge, "type", "bridge",
                    "stp_state", "0", "forward_delay", "0",
                )  # fmt: skip
            await run("ip", "link", "set", n.bridge, "up")
            if self.underlay is not None:
                await self._ensure_vxlan(n, plan.vxlan_id, self.underlay)
            if not (NETNS_DIR / n.netns).exists():
                # A namespace deleted under a running dnsmasq lives on unnamed,
                # holding the inner veth: clear both before starting afresh.
                await dnsmasq.stop()
                await delete_link(n.outer)
                await delete_link(n.egress_outer)
                await run("ip", "netns", "add", n.netns)
            if not await link_exists(n.outer):
                await run(
                    "ip", "link", "add", n.outer, "type", "veth",
                    "peer", "name", n.inner, "netns", n.netns,
                )  # fmt: skip
            await run("ip", "link", "set", n.outer, "master", n.bridge, "up")
            await run("bridge", "link", "set", "dev", n.outer, "isolated", "on")
            await run("ip", "-n", n.netns, "link", "set", "lo", "up")
            await run(
                "ip", "-n", n.netns, "addr", "replace",
                f"{gateway}/{network.prefixlen}", "dev", n.inner,
            )  # fmt: skip
            await run("ip", "-n", n.netns, "link", "set", n.inner, "up")
            if plan.provide_dhcp:
                mtu = self.underlay.overlay_mtu if self.underlay else None
                await dnsmasq.start(
                    netns=n.netns, interface=n.inner, network=network, gateway=gateway, mtu=mtu
                )
            else:
                await dnsmasq.stop()
            if egress_address is not None and self.egress is not None:
                await ensure_nat(
                    n.netns, n.inner, n.egress_outer, n.egress_inner,
                    network, self.egress, egress_address, floats or {},
                )  # fmt: skip
            else:
                await remove_nat(n.netns, n.egress_outer, n.egress_inner)
        return n.bridge

    async def ping(self, vxlan_id: int, address: str) -> tuple[int, str, str]:
        """Ten pings of `address` from network `vxlan_id`'s namespace here,
        a fifth of a second apart: (ping's exit status, output, error output).
        Raises NoNetwork when this node does not carry the network, and
        ValueError for an address that is not IPv4."""
        target = str(ipaddress.IPv4Address(address))
        netns = names(self.node, vxlan_id).netns
        if not (NETNS_DIR / netns).exists():
            raise NoNetwork(f"network {vxlan_id} is not on node {self.node}")
        return await outcome(
            "ip", "netns", "exec", netns, "ping", "-n", "-c", "10", "-i", "0.2", "-W", "1", target
        )

    async def has(self, vxlan_id: int) -> bool:
        """Whether this node carries network `vxlan_id` (its bridge exists)."""
        return await link_exists(names(self.node, vxlan_id).bridge)

    async def set_floats(self, plan: NetworkPlan, floats: Mapping[str, str]) -> None:
        """Map exactly `floats` (floating address -> NIC address in the block)
        through the network's NAT here. Raises NoNat when the network has no
        NAT on this node."""
        n = names(self.node, plan.vxlan_id)
        network, _ = _block(plan)
        async with self._lock:
            if not await link_exists(n.egress_inner, n.netns):
                raise NoNat(f"network {plan.uuid} has no NAT on this node to float on")
            await set_floats(n.netns, n.inner, n.egress_inner, network, floats)

    async def set_peers(self, peers: frozenset[str]) -> None:
        """Flood every network's VXLAN on this node to exactly `peers`, the
        underlay addresses of the other nodes; networks made later follow."""
        async with self._lock:
            self._peers = peers
            prefix = f"sfx{node_tag(self.node)}"
            for device in await links_of_type("vxlan"):
                if device.startswith(prefix):
                    await _set_flood(device, peers)

    async def _ensure_vxlan(self, n: Names, vxlan_id: int, underlay: Underlay) -> None:
        """The network's VXLAN device on its bridge, flooding to the peers."""
        if not await link_exists(n.vxlan):
            where = ("-n", underlay.netns) if underlay.netns else ()
            if underlay.netns:  # left behind by a stop between the two steps below
                await delete_link(n.vxlan, underlay.netns)
            await run(
                "ip", *where, "link", "add", n.vxlan, "mtu", str(underlay.overlay_mtu),
                "type", "vxlan", "id", str(vxlan_id), "local", underlay.address,
                "dstport", str(VXLAN_PORT),
            )  # fmt: skip
            if underlay.netns:
                await run("ip", *where, "link", "set", n.vxlan, "netns", str(os.getpid()))
        await run("ip", "link", "set", n.vxlan, "master", n.bridge, "up")
        await run("bridge", "link", "set", "dev", n.vxlan, "isolated", "on")
        await _set_flood(n.vxlan, self._peers)

    async def set_hosts(self, plan: NetworkPlan, pins: Mapping[str, str]) -> None:
        """Make dnsmasq serve exactly `pins` (MAC -> IPv4 address in the block):
        replace the hosts file atomically and SIGHUP dnsmasq when it runs.
        No-op without DHCP. Raises ValueError on a bad MAC or address."""
        if not plan.provide_dhcp:
            return
        text = hosts_text(*_block(plan), pins)
        dnsmasq = self._dnsmasq(plan)
        async with self._lock:
            dnsmasq.set_hosts(text)

    async def remove(self, plan: NetworkPlan) -> None:
        """Tear down whatever is left of the network on this node: dnsmasq, the
        veth, the namespace, the bridge and the network's folder."""
        n = names(self.node, plan.vxlan_id)
        dnsmasq = self._dnsmasq(plan)
        async with self._lock:
            await dnsmasq.stop()
            await delete_link(n.outer)
            await delete_link(n.egress_outer)
            if (NETNS_DIR / n.netns).exists():
                await run("ip", "netns", "delete", n.netns)
            await delete_link(n.vxlan)
            if self.underlay is not None and self.underlay.netns:
                await delete_link(n.vxlan, self.underlay.netns)
            await delete_link(n.bridge)
            if dnsmasq.folder.exists():
                shutil.rmtree(dnsmasq.folder)

    def _dnsmasq(self, plan: NetworkPlan) -> Dnsmasq:
        """The network's dnsmasq, whose folder is the network's folder here."""
        if not is_uuid(plan.uuid):
            raise ValueError(f"network uuid {plan.uuid!r} is not a canonical uuid")
        return Dnsmasq(self.root / plan.uuid)


def _block(plan: NetworkPlan) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
    """The network's block and its gateway, the block's first host."""
    network = ipaddress.IPv4Network(plan.netblock)
    if network.num_addresses < 4:
        raise ValueError(f"netblock {network} has no room for a gateway and a guest")
    return network, first_host(network)


async def _set_flood(device: str, peers: frozenset[str]) -> None:
    """Make `device`'s flood entries go to exactly `peers`."""
    current = flood_targets(await run("bridge", "fdb", "show", "dev", device))
    for peer in sorted(peers - current):
        await run("bridge", "fdb", "append", FLOOD_MAC, "dev", device, "dst", peer)
    for peer in sorted(current - peers):
        await run("bridge", "fdb", "del", FLOOD_MAC, "dev", device, "dst", peer)
