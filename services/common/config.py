"""Settings every service shares: where etcd, the state folder and the other
services are. Values come from flags, then `SFMESH_*` variables, then loopback
defaults. Each service's `__main__` builds its config and passes it down."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/sfmesh"
DEFAULT_GATEWAY_ADDRESS = "127.0.0.1:13000"


@dataclass(frozen=True)
class MeshConfig:
    """Where the shared parts of the mesh are."""

    state_dir: Path
    """Folder for secrets, databases, images and consoles."""
    etcd: str
    """etcd client address, host:port."""
    api: str
    """The api service's gRPC address."""
    scheduler: str
    """The scheduler's gRPC address."""
    eventlog: str
    """The eventlog's gRPC address."""
    floating_netblock: str = ""
    """The pool of outside addresses (IPv4 CIDR) NAT and floating addresses
    come from; its first host is the router; "" for none."""
    gateway: str = DEFAULT_GATEWAY_ADDRESS
    """The REST gateway's address, host:port (node agents never fetch from it)."""


def env(name: str, default: str) -> str:
    """The value of `SFMESH_<name>`, or `default`."""
    return os.environ.get(f"SFMESH_{name}", default)


def add_mesh_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the shared flags, defaulted from the environment."""
    parser.add_argument("--state-dir", default=env("STATE_DIR", DEFAULT_STATE_DIR))
    parser.add_argument("--etcd", default=env("ETCD", "127.0.0.1:13379"))
    parser.add_argument("--api", default=env("API_ADDRESS", "127.0.0.1:13010"))
    parser.add_argument("--scheduler", default=env("SCHEDULER_ADDRESS", "127.0.0.1:13011"))
    parser.add_argument("--eventlog", default=env("EVENTLOG_ADDRESS", "127.0.0.1:13012"))
    parser.add_argument("--gateway", default=env("GATEWAY_ADDRESS", DEFAULT_GATEWAY_ADDRESS))
    parser.add_argument(
        "--floating-netblock",
        default=env("FLOATING_NETBLOCK", ""),
        help="IPv4 CIDR of outside addresses for NAT; its first host is the router",
    )


def mesh_config(args: argparse.Namespace) -> MeshConfig:
    """Build the shared config from parsed flags."""
    return MeshConfig(
        state_dir=Path(args.state_dir),
        etcd=args.etcd,
        api=args.api,
        scheduler=args.scheduler,
        eventlog=args.eventlog,
        floating_netblock=args.floating_netblock,
        gateway=args.gateway,
    )


def split_address(address: str) -> tuple[str, int]:
    """Split host:port."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)
