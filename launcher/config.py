"""A host config: which roles this host runs, where they listen, where the
rest of the mesh is, and the settings each role's service gets.

`parse_config` is pure: a TOML document in, a `HostConfig` out, or a
`ConfigError` listing every problem, each naming its key, before anything
starts. `load_config` reads the file. The format, key by key, is in
`launcher/README.md`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher import values
from launcher.addresses import Address
from launcher.etcd_cluster import EtcdMember, etcd_member, mesh_endpoints
from launcher.roles import MESH_FLAGS, ROLES, managed_key, role_settings
from launcher.tls import TlsDir, missing_files, tls_dir
from services.common.addresses import floating_pool
from services.common.replicas import ReplicaAddressError, parse_replicas

DEFAULT_STATE_DIR = Path("/var/lib/sfmesh")
HOST_KEYS = ("name", "roles", "state_dir", "address")
MESH_KEYS = tuple(key for key in MESH_FLAGS if key != "state_dir")
"""`[mesh]`: etcd (a list of endpoints), api, scheduler, eventlog, gateway,
floating_netblock — the shared settings every service takes."""
SERVICE_KEYS = ("listen", "metrics_listen")
"""What a role's table takes besides its service's settings: where it
listens, and where it serves metrics ("" for nowhere)."""
REPLICATED = ("api", "eventlog")
"""The `[mesh]` parts that may list several replicas (``services/common/replicas.py``)."""


class ConfigError(ValueError):
    """A host config that cannot run: every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class MeshAddresses:
    """Where this host's roles find the shared parts of the mesh; None where
    no role of this host needs it and none was given."""

    etcd: tuple[Address, ...] = ()
    """etcd's client endpoints: the members of one cluster."""
    api: tuple[Address, ...] = ()
    """The api replicas: one, or several a gateway balances over."""
    scheduler: Address | None = None
    eventlog: tuple[Address, ...] = ()
    """The eventlog replicas: one, or several on one store that every
    service balances over."""
    gateway: Address | None = None
    floating_netblock: str = ""
    """The floating pool (IPv4 CIDR), "" for none."""


@dataclass(frozen=True)
class ServiceRole:
    """One of our services on this host."""

    name: str
    """The role's name."""
    listen: Address
    metrics: Address | None = None
    """Where it serves Prometheus metrics (`metrics_listen`); None for nowhere."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """Its table's settings, flag → text, each taken by the service's own parser."""


@dataclass(frozen=True)
class HostConfig:
    """Everything the launcher needs to run this host's share of the mesh."""

    name: str
    """The host's name: the node agent's node name and the etcd member's name."""
    state_dir: Path
    address: str
    """The address other hosts reach this one at; roles listen on it by default."""
    roles: tuple[str, ...]
    """The roles this host runs, in start order."""
    mesh: MeshAddresses
    etcd: EtcdMember | None = None
    services: Mapping[str, ServiceRole] = field(default_factory=dict)
    tls: TlsDir | None = None
    """This host's certificates (`[tls]`); None for plaintext."""

    def listen(self, role: str) -> Address:
        """Where `role` listens on this host."""
        if role == "etcd":
            assert self.etcd is not None
            return self.etcd.listen
        return self.services[role].listen

    def advertised(self, listen: Address) -> Address:
        """How other hosts reach one of this host's listeners."""
        return advertised(self.address, listen)

    def metrics_urls(self) -> dict[str, str]:
        """The `/metrics` URL of each role of this host that serves one, as
        other hosts reach it."""
        return {
            role: f"http://{self.advertised(service.metrics)}/metrics"
            for role, service in self.services.items()
            if service.metrics is not None
        }


def advertised(host_address: str, listen: Address) -> Address:
    """How other hosts reach a listener: at the host's address when it
    listens on every address."""
    return Address(host_address, listen.port) if listen.wildcard else listen


def load_config(path: Path, *, hostname: str) -> HostConfig:
    """Read and parse a host config file, and check that the certificates
    it names are there; ConfigError naming the file's problems (a TOML
    syntax error included)."""
    try:
        document = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not TOML: {exc}"]) from None
    config = parse_config(document, hostname=hostname)
    if config.tls is not None:
        missing = missing_files(config.tls, config.roles, host=config.name, address=config.address)
        if missing:
            raise ConfigError(missing)
    return config


def parse_config(document: Mapping[str, Any], *, hostname: str) -> HostConfig:
    """The HostConfig a TOML document describes (pure: the files `[tls]`
    names are checked by `load_config`); `hostname` is the default host name."""
    problems: list[str] = []
    values.unknown_keys(problems, "", document, ("host", "mesh", "tls", *ROLES))
    host = values.table(problems, document, "host")
    values.unknown_keys(problems, "host", host, HOST_KEYS)
    name = str(host.get("name", hostname))
    if not values.NAME.match(name):
        problems.append(f"host.name: {name!r} is not a name (letters, digits, '.', '_', '-')")
    roles = _roles(problems, host)
    state_dir = values.absolute_path(
        problems, "host.state_dir", host.get("state_dir", str(DEFAULT_STATE_DIR))
    )
    address = values.host_address(problems, host.get("address", "127.0.0.1"))
    for role in ROLES:
        if role in document and roles and role not in roles:
            problems.append(f"{role}: [{role}] is set but host.roles does not list {role}")
    etcd = (
        etcd_member(
            problems,
            values.table(problems, document, "etcd"),
            name=name,
            state_dir=state_dir,
            advertised_peer=lambda peer: advertised(address, peer),
            address=address,
        )
        if "etcd" in roles
        else None
    )
    services = {
        role: _service(problems, role, values.table(problems, document, role), address)
        for role in roles
        if role != "etcd"
    }
    mesh = _mesh(problems, values.table(problems, document, "mesh"), address, etcd, services)
    tls = tls_dir(problems, document)
    config = HostConfig(name, state_dir, address, roles, mesh, etcd, services, tls)
    _check_needs(problems, config)
    _check_ports(problems, config)
    if problems:
        raise ConfigError(problems)
    return config


def _roles(problems: list[str], host: Mapping[str, Any]) -> tuple[str, ...]:
    listed = host.get("roles")
    if not isinstance(listed, list) or not listed:
        problems.append(f"host.roles: required: a list of the roles this host runs ({_or(ROLES)})")
        return ()
    for role in listed:
        if role not in ROLES:
            problems.append(f"host.roles: {role!r} is not a role{values.suggest(role, ROLES)}")
    if len(set(map(str, listed))) != len(listed):
        problems.append("host.roles: a role is listed twice")
    return tuple(role for role in ROLES if role in listed)


def _service(problems: list[str], role: str, table: Mapping[str, Any], address: str) -> ServiceRole:
    settings = role_settings(role)
    flags = {}
    for key, value in table.items():
        if key in SERVICE_KEYS:
            continue
        where = managed_key(role, key)
        if where is not None:
            problems.append(f"{role}.{key}: the launcher sets it from {where}; set that instead")
        elif key not in settings:
            problems.append(
                f"{role}.{key}: unknown key{values.suggest(key, [*SERVICE_KEYS, *settings])}"
                f" ({role} takes listen and the flags of `python -m {ROLES[role].module} --help`)"
            )
        else:
            text = values.flag_text(problems, f"{role}.{key}", value)
            if text is not None and values.valid_setting(
                problems, f"{role}.{key}", settings[key], text
            ):
                flags[settings[key].flag] = text
    listen = values.address_at(problems, f"{role}.listen", table, f"{address}:{ROLES[role].port}")
    metrics = _metrics_listen(problems, role, table, address)
    return ServiceRole(role, listen, metrics, flags)


def _metrics_listen(
    problems: list[str], role: str, table: Mapping[str, Any], address: str
) -> Address | None:
    """`<role>.metrics_listen`: by default the role's own port for metrics
    at the host's address (never every address unless asked, even for a
    role that listens on all of them); "" for none."""
    default = str(Address(address, ROLES[role].metrics_port))
    if table.get("metrics_listen", default) == "":
        return None
    return values.address_at(problems, f"{role}.metrics_listen", table, default)


def _mesh(
    problems: list[str],
    table: Mapping[str, Any],
    address: str,
    etcd: EtcdMember | None,
    services: Mapping[str, ServiceRole],
) -> MeshAddresses:
    """`[mesh]`, each address defaulting to this host's own role when it runs it."""
    values.unknown_keys(problems, "mesh", table, MESH_KEYS)
    found: dict[str, Any] = {}
    for key in ("api", "scheduler", "eventlog", "gateway"):
        if key in REPLICATED and key in table:
            found[key] = replicas(problems, key, table[key])
        elif key in table:
            found[key] = values.address_at(problems, f"mesh.{key}", table, "")
        elif key in services:
            found[key] = advertised(address, services[key].listen)
        if key in REPLICATED and isinstance(found.get(key), Address):
            found[key] = (found[key],)
    own = advertised(address, etcd.listen) if etcd is not None else None
    used = any("etcd" in ROLES[role].calls for role in services)
    found["etcd"] = mesh_endpoints(problems, table.get("etcd"), etcd, own, used=used)
    netblock = table.get("floating_netblock", "")
    if not isinstance(netblock, str):
        problems.append("mesh.floating_netblock: an IPv4 CIDR string")
    else:
        try:
            floating_pool(netblock)
            found["floating_netblock"] = netblock
        except SystemExit as exc:
            problems.append(f"mesh.floating_netblock: {exc}")
    return MeshAddresses(**found)


def replicas(problems: list[str], role: str, listed: Any) -> tuple[Address, ...]:
    """`mesh.api` or `mesh.eventlog`: one host:port, or a list of the
    replicas' (each an IP literal, as one channel reaches several)."""
    key = f"mesh.{role}"
    if isinstance(listed, str):
        return (values.address(problems, key, listed),)
    if not isinstance(listed, list) or not listed:
        port = ROLES[role].port
        problems.append(
            f"{key}: host:port, or a list of the {role} replicas' IP:port,"
            f" e.g. ['10.0.0.1:{port}', '10.0.0.2:{port}']"
        )
        return ()
    found = tuple(values.address(problems, key, one) for one in listed)
    try:
        parse_replicas(",".join(map(str, found)), role=role)
    except ReplicaAddressError as exc:
        problems.append(f"{key}: {exc}")
    return found


def _check_needs(problems: list[str], config: HostConfig) -> None:
    """Every address a role of this host calls is known."""
    for part in MESH_KEYS:
        if getattr(config.mesh, part):
            continue
        callers = [role for role in config.roles if part in ROLES[role].calls]
        if callers:
            calls = "calls" if len(callers) == 1 else "call"
            problems.append(
                f"mesh.{part}: required: this host runs {_and(callers)}, which {calls} the"
                f" {part}, and runs no {part} itself"
            )
    agent = config.services.get("node_agent")
    if agent and agent.settings.get("--egress-bridge") and not config.mesh.floating_netblock:
        problems.append(
            "node_agent.egress_bridge: needs mesh.floating_netblock (the pool NAT uses)"
        )


def _check_ports(problems: list[str], config: HostConfig) -> None:
    """No two listeners of this host on one port (port 0 stands for an
    address already refused)."""
    listeners = [(key, at) for key, at in bindings(config, config.roles) if at.port]
    for n, (label, address) in enumerate(listeners):
        for other_label, other in listeners[n + 1 :]:
            if address.overlaps(other):
                problems.append(f"{label} and {other_label}: both listen on port {address.port}")


def bindings(config: HostConfig, roles: Iterable[str]) -> list[tuple[str, Address]]:
    """What `roles` listen on, each with the key that sets it (`api.listen`)."""
    listeners = []
    for role in roles:
        if role == "etcd" and config.etcd is not None:
            listeners += [("etcd.listen", config.etcd.listen), ("etcd.peer", config.etcd.peer)]
        elif role in config.services:
            service = config.services[role]
            listeners.append((f"{role}.listen", service.listen))
            if service.metrics is not None:
                listeners.append((f"{role}.metrics_listen", service.metrics))
    return listeners


def _or(words: Iterable[str]) -> str:
    return ", ".join(words)


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
