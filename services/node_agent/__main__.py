"""`python -m services.node_agent`: flags and SFMESH_* variables ->
NodeAgentConfig -> serve."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import socket

from services.common.addresses import floating_pool
from services.common.config import mesh_config
from services.common.main import parse_arguments
from services.common.settings import Setting
from services.node_agent.assembly import NodeAgentConfig
from services.node_agent.blob_care import CareSettings
from services.node_agent.dataplane import Underlay
from services.node_agent.facts import VIRT_TYPES
from services.node_agent.fetch_policy import IPNetwork, parse_networks
from services.node_agent.graphics_ports import DEFAULT_LISTEN, DEFAULT_PORTS, GraphicsSettings
from services.node_agent.graphics_ports import parse_ports as graphics_ports
from services.node_agent.images import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, DEFAULT_SHORTHANDS
from services.node_agent.nat import Egress
from services.node_agent.presence import DEFAULT_TTL, MIN_TTL
from services.node_agent.resources import DEFAULT_INTERVAL as RESOURCES_INTERVAL
from services.node_agent.server import serve_node_agent
from services.node_agent.source_checks import DEFAULT_CHECK_INTERVAL
from services.node_agent.usage import DEFAULT_INTERVAL as USAGE_INTERVAL


def parse_shorthands(text: str) -> dict[str, str]:
    """`debian:11=http://…,other=https://…` as a table."""
    table = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, url = entry.partition("=")
        if not sep or not name or not url:
            raise argparse.ArgumentTypeError(f"image shorthand {entry!r} is not NAME=URL")
        table[name] = url
    return table


def networks(text: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs, as a flag's type."""
    try:
        return parse_networks(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of CIDRs: {exc}") from exc


def non_negative(text: str) -> float:
    """A number of seconds, 0 or more, as a flag's type."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def positive(text: str) -> float:
    """A number of seconds above 0, as a flag's type."""
    value = non_negative(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def port_range(text: str) -> range:
    """`LOW-HIGH` ports, as a flag's type."""
    try:
        return graphics_ports(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address, as a flag's type."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from exc


def ipv4(text: str) -> str:
    """An IPv4 address, or "" for none."""
    if not text:
        return ""
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from exc


def egress(bridge: str, floating_netblock: str) -> Egress | None:
    """The node's egress, from its two settings; exits on a bad pair."""
    pool = floating_pool(floating_netblock)
    if not bridge:
        return None
    if pool is None:
        raise SystemExit("--egress-bridge needs --floating-netblock")
    return Egress(bridge, pool)


SETTINGS = (
    Setting("--node-name", "", "this node's name; empty for the hostname"),
    Setting(
        "--advertise",
        "",
        "host:port others dial to reach this agent; empty for the listen address",
        variable="NODE_AGENT_ADVERTISE",
    ),
    Setting(
        "--virt-type",
        "auto",
        "kvm, qemu (TCG), or auto: kvm only with /dev/kvm and a vmx/svm CPU flag",
        choices=VIRT_TYPES,
    ),
    Setting("--libvirt-uri", "qemu:///system", "the libvirt connection"),
    Setting(
        "--image-shorthands",
        {},
        "NAME=URL,... disk bases added to (or replacing) the built-in table",
        parse_shorthands,
    ),
    Setting(
        "--image-max-gib",
        DEFAULT_MAX_BYTES / 2**30,
        "the largest image a download may bring, in GiB",
        float,
    ),
    Setting("--image-deadline", DEFAULT_DEADLINE, "seconds one image download may take", float),
    Setting(
        "--image-check-interval",
        DEFAULT_CHECK_INTERVAL,
        "seconds after an image URL was last read before an instance create has it checked "
        "for changes again, in the background; 0: at every create",
        non_negative,
    ),
    Setting(
        "--image-allowed-networks",
        (),
        "CIDR,... image downloads may reach although loopback, private or reserved; "
        "the mesh's own endpoints stay refused",
        networks,
    ),
    Setting(
        "--underlay-address",
        "",
        "the IPv4 address other nodes reach this node's VXLAN at; empty: networks stay "
        "on this node",
        ipv4,
    ),
    Setting(
        "--underlay-netns",
        "",
        "the network namespace holding --underlay-address; empty for the agent's own",
    ),
    Setting("--underlay-mtu", 1500, "the underlay's MTU; guests get 50 bytes less", int),
    Setting(
        "--blob-replication-factor",
        CareSettings.factor,
        "whole copies each created blob should have on live nodes",
        int,
    ),
    Setting(
        "--blob-min-free-gib",
        CareSettings.reserve / 2**30,
        "GiB a replication copy must leave free on the blob folder's disk",
        float,
    ),
    Setting(
        "--blob-delete-grace",
        CareSettings.delete_grace,
        "seconds the file of a deleted blob is kept",
        float,
    ),
    Setting(
        "--blob-verify-interval",
        CareSettings.verify_interval,
        "seconds between two sha512 checks of one local blob; 0: never",
        float,
    ),
    Setting(
        "--presence-ttl",
        DEFAULT_TTL,
        "seconds this node's presence lease outlives the agent: after that, a node whose "
        "agent or host died is missing",
        int,
    ),
    Setting(
        "--console-listen",
        DEFAULT_LISTEN,
        "the address graphical consoles (VNC, SPICE; no password) listen at: loopback keeps "
        "them off the network; 0.0.0.0 or a node address exposes them",
        ip_address,
    ),
    Setting(
        "--console-ports",
        f"{DEFAULT_PORTS.start}-{DEFAULT_PORTS.stop - 1}",
        "LOW-HIGH: the ports graphical consoles are given (within 5900-65535)",
        port_range,
    ),
    Setting(
        "--usage-interval",
        USAGE_INTERVAL,
        "seconds between two `usage` events of each running instance (one libvirt bulk "
        "call per sample); 0: none",
        non_negative,
    ),
    Setting(
        "--resources-interval",
        RESOURCES_INTERVAL,
        "seconds between two samples of this node's resources (a `resources` event) and "
        "of its mesh processes (GET /nodes/{node}/processmetrics)",
        positive,
    ),
    Setting(
        "--egress-bridge",
        "",
        "an existing bridge on the --floating-netblock segment: NAT networks reach the "
        "outside through it; empty: no NAT on this node",
    ),
)


def main() -> None:
    """Parse the configuration and run the node agent."""
    args = parse_arguments("node_agent", listen="127.0.0.1:13020", settings=SETTINGS)
    if args.presence_ttl < MIN_TTL:
        raise SystemExit(f"--presence-ttl must be at least {MIN_TTL} seconds")
    config = NodeAgentConfig(
        mesh=mesh_config(args),
        listen=args.listen,
        node_name=args.node_name or socket.gethostname(),
        advertise=args.advertise or args.listen,
        virt_type=args.virt_type,
        libvirt_uri=args.libvirt_uri,
        image_shorthands={**DEFAULT_SHORTHANDS, **args.image_shorthands},
        image_max_bytes=int(args.image_max_gib * 2**30),
        image_deadline=args.image_deadline,
        image_check_interval=args.image_check_interval,
        image_allowed_networks=args.image_allowed_networks,
        underlay=Underlay(args.underlay_address, args.underlay_netns, args.underlay_mtu)
        if args.underlay_address
        else None,
        egress=egress(args.egress_bridge, args.floating_netblock),
        blob_care=CareSettings(
            factor=args.blob_replication_factor,
            reserve=int(args.blob_min_free_gib * 2**30),
            delete_grace=args.blob_delete_grace,
            verify_interval=args.blob_verify_interval,
        ),
        presence_ttl=args.presence_ttl,
        graphics=GraphicsSettings(listen=args.console_listen, ports=args.console_ports),
        usage_interval=args.usage_interval,
        resources_interval=args.resources_interval,
    )
    asyncio.run(serve_node_agent(config))


if __name__ == "__main__":
    main()
