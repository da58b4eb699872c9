"""Settings every service shares: where etcd, the state folder and the other
services are, and the TLS files this process reaches them with. Values come
from flags, then `SFMESH_*` variables, then loopback defaults. Each service's
`__main__` builds its config and passes it down."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from services.common.etcd_endpoints import parse_endpoints
from services.common.settings import Setting
from services.common.transport import TlsConfigError, Transport


@dataclass(frozen=True)
class MeshConfig:
    """Where the shared parts of the mesh are, and how this process reaches them."""

    state_dir: Path
    """Folder for secrets, databases, images and consoles."""
    etcd: tuple[str, ...]
    """etcd's client endpoints, host:port each: the members of one cluster."""
    api: str
    """The api service's gRPC address; several replicas' comma-separated."""
    scheduler: str
    """The scheduler's gRPC address."""
    eventlog: str
    """The eventlog's gRPC address; several replicas' `IP:port`
    comma-separated, on one shared store (``replicas.py``)."""
    floating_netblock: str = ""
    """The pool of outside addresses (IPv4 CIDR) NAT and floating addresses
    come from; its first host is the router; "" for none."""
    gateway: str = "127.0.0.1:13000"
    """The REST gateway's address, host:port (node agents never fetch from it)."""
    transport: Transport = field(default_factory=Transport)
    """This process's gRPC channels and port: mutual TLS, or plaintext."""


STATE_DIR = Setting(
    "--state-dir", "/var/lib/sfmesh", "folder for secrets, databases, images and consoles"
)
MESH_SETTINGS = (
    STATE_DIR,
    Setting(
        "--etcd",
        "127.0.0.1:13379",
        "etcd's client endpoints, host:port, comma-separated for the members of a cluster",
        parse_endpoints,
    ),
    Setting(
        "--api",
        "127.0.0.1:13010",
        "the api's gRPC address; several replicas' comma-separated",
        variable="API_ADDRESS",
    ),
    Setting(
        "--scheduler",
        "127.0.0.1:13011",
        "the scheduler's gRPC address",
        variable="SCHEDULER_ADDRESS",
    ),
    Setting(
        "--eventlog",
        "127.0.0.1:13012",
        "the eventlog's gRPC address; several replicas' IP:port comma-separated",
        variable="EVENTLOG_ADDRESS",
    ),
    Setting(
        "--gateway",
        MeshConfig.gateway,
        "the REST gateway's address (node agents never fetch from it)",
        variable="GATEWAY_ADDRESS",
    ),
    Setting(
        "--floating-netblock",
        MeshConfig.floating_netblock,
        "IPv4 CIDR of outside addresses for NAT; its first host is the router",
    ),
)
"""The flags every service takes for where the mesh is (`parse_arguments`
adds `TLS_SETTINGS`, how it reaches it)."""


def mesh_config(args: argparse.Namespace) -> MeshConfig:
    """Build the shared config from parsed flags; exits with a message when
    the TLS files are not all given or cannot be read."""
    try:
        transport = Transport.from_settings(args.tls_ca, args.tls_cert, args.tls_key)
    except TlsConfigError as exc:
        raise SystemExit(f"sfmesh: {exc}") from None
    return MeshConfig(
        state_dir=Path(args.state_dir),
        etcd=args.etcd,
        api=args.api,
        scheduler=args.scheduler,
        eventlog=args.eventlog,
        floating_netblock=args.floating_netblock,
        gateway=args.gateway,
        transport=transport,
    )


def split_address(address: str) -> tuple[str, int]:
    """Split host:port."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)
