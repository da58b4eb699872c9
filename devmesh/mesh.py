"""The whole mesh on one machine: etcd plus every service, on loopback.

`make run` uses it with the default ports; the end-to-end tests use it with
free ports and a temporary state folder. It is the launcher's all-in-one
host: `start()` writes the host config `<state>/host.toml` and runs it with
`launcher.host.Host`, exactly as `python -m launcher --config` would. With
`tls=True` it first makes a CA (`<state>/ca`, kept across starts) and this
host's certificates (`<state>/tls`, every role), and the config names them
in `[tls]`: mutual TLS between the roles, HTTPS on the gateway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import libvirt

from devmesh.certificates import issue
from launcher.config import load_config, parse_config
from launcher.host import READY_TIMEOUT, Host
from launcher.processes import Child, wait_until
from launcher.roles import ETCD_PEER_PORT, ROLES, variable_keys
from launcher.tls import TlsDir, scheme
from launcher.toml_text import render
from services.common.settings import PREFIX
from services.node_agent.dataplane import node_tag
from services.node_agent.naming import instance_of

SMALL_MACHINE = {
    "SFMESH_MIN_FREE_DISK_GIB": "2",
    "SFMESH_RAM_RESERVED_MIB": "512",
}
"""Scheduler thresholds that fit a developer's machine (Shaken Fist's keep
20 GiB of disk and 2 GiB of RAM); the environment overrides them."""
LOOPBACK_IMAGES = {"SFMESH_IMAGE_ALLOWED_NETWORKS": "127.0.0.0/8"}
"""Node agents may fetch images from loopback, where the test image server
lives (the mesh's own endpoints stay refused); the environment overrides it."""
ETCD_MEMBER = "sfmesh"
"""The name of a bare etcd's host and member (`start_etcd`)."""


@dataclass(frozen=True)
class Ports:
    """Where each part listens."""

    gateway: int = ROLES["gateway"].port
    api: int = ROLES["api"].port
    scheduler: int = ROLES["scheduler"].port
    eventlog: int = ROLES["eventlog"].port
    node_agent: int = ROLES["node_agent"].port
    etcd_client: int = ROLES["etcd"].port
    etcd_peer: int = ETCD_PEER_PORT
    gateway_metrics: int = ROLES["gateway"].metrics_port
    api_metrics: int = ROLES["api"].metrics_port
    scheduler_metrics: int = ROLES["scheduler"].metrics_port
    eventlog_metrics: int = ROLES["eventlog"].metrics_port
    node_agent_metrics: int = ROLES["node_agent"].metrics_port
    """Each service's Prometheus metrics (etcd serves its own on its client port)."""

    @classmethod
    def free(cls) -> Ports:
        """Ports the kernel says are free now."""
        names = list(cls.__dataclass_fields__)
        sockets = []
        for _ in names:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        ports = [sock.getsockname()[1] for sock in sockets]
        for sock in sockets:
            sock.close()
        return cls(**dict(zip(names, ports, strict=True)))


@dataclass
class Mesh:
    """A running mesh; `start()` brings it up, `stop()` takes it down."""

    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    sink: IO[str] | None = field(default_factory=lambda: sys.stdout)
    """Where the children's output goes, prefixed; None discards it."""
    node_name: str = field(default_factory=socket.gethostname)
    """The node agent's node name; it prefixes the libvirt domains it makes."""
    settings: dict[str, str] = field(default_factory=dict)
    """Extra settings, as their SFMESH_* variables, over the defaults and the
    environment's; each lands in the config table of every role that reads it."""
    node_agent: bool = True
    """Whether this machine's node agent runs (benchmarks of the api alone
    feed the scheduler simulated nodes instead)."""
    tls: bool = False
    """Whether the roles speak TLS, with certificates made in the state folder."""
    metrics: bool = True
    """Whether each service serves Prometheus metrics (and so records them)
    on its `ports` (bench/metrics.py compares a mesh with none)."""
    host: Host | None = field(default=None, init=False)
    """The launcher's host once started."""

    @property
    def config_path(self) -> Path:
        """The host config `start()` writes and runs."""
        return self.state_dir / "host.toml"

    @property
    def children(self) -> dict[str, Child]:
        """The running roles' processes, by role."""
        return {} if self.host is None else self.host.children

    @property
    def certificates(self) -> TlsDir | None:
        """This host's certificates (`[tls] dir`), with `tls`; the CA's
        certificate, `ca`, is what a client trusts."""
        return TlsDir(self.state_dir / "tls") if self.tls else None

    @property
    def ca_folder(self) -> Path:
        """The folder of the CA `tls` makes, kept across starts."""
        return self.state_dir / "ca"

    @property
    def gateway_url(self) -> str:
        """The REST base URL: https with `tls`."""
        return f"{scheme(self.certificates)}://127.0.0.1:{self.ports.gateway}"

    def address(self, service: str) -> str:
        """The gRPC address of a service."""
        return f"127.0.0.1:{getattr(self.ports, service)}"

    @property
    def services(self) -> list[str]:
        """The services this mesh runs (its roles but etcd), in start order."""
        return [r for r in ROLES if r != "etcd" and (self.node_agent or r != "node_agent")]

    def metrics_url(self, service: str) -> str:
        """Where a service (`gateway` or a gRPC service) serves its Prometheus metrics."""
        return f"http://{self.address(f'{service}_metrics')}/metrics"

    @property
    def system_key(self) -> str:
        """The system namespace's key, kept in the state folder."""
        return (self.state_dir / "system.key").read_text().strip()

    def document(self) -> dict[str, dict[str, Any]]:
        """The all-in-one host config: every role on loopback at `ports`;
        settings from the small-machine defaults, then the environment's
        SFMESH_* variables, then `settings`."""
        roles = ["etcd", *self.services]
        document: dict[str, dict[str, Any]] = {
            "host": {"name": self.node_name, "roles": roles, "state_dir": str(self.state_dir)},
            "mesh": {},
            "etcd": {"listen": self.address("etcd_client"), "peer": self.address("etcd_peer")},
            **{
                role: {
                    "listen": self.address(role),
                    "metrics_listen": self.address(f"{role}_metrics") if self.metrics else "",
                }
                for role in self.services
            },
        }
        set_variables(document, {**SMALL_MACHINE, **LOOPBACK_IMAGES}, strict=False)
        set_variables(document, os.environ, strict=False)
        set_variables(document, self.settings, strict=True)
        if not document["mesh"]:
            del document["mesh"]
        if self.certificates is not None:
            document["tls"] = {"dir": str(self.certificates.folder)}
        return document

    def node_agent_document(
        self, name: str, state_dir: Path, listen: str, settings: Mapping[str, str]
    ) -> dict[str, dict[str, Any]]:
        """The config of another host of this mesh that runs only a node
        agent, named `name`: this mesh's node agent settings, then
        `settings`; it serves no metrics."""
        ours = self.document()
        document: dict[str, dict[str, Any]] = {
            "host": {"name": name, "roles": ["node_agent"], "state_dir": str(state_dir)},
            "mesh": {
                "etcd": [self.address("etcd_client")],
                **{part: self.address(part) for part in ("api", "scheduler", "eventlog")},
                "gateway": self.address("gateway"),
                **ours.get("mesh", {}),
            },
            "node_agent": {**ours.get("node_agent", {}), "listen": listen, "metrics_listen": ""},
        }
        set_variables(document, settings, strict=True)
        return document

    def start(self) -> None:
        """Write the all-in-one config and start it: etcd, then the
        services, each once the one before is ready; PortInUse
        (launcher.ports), with nothing started, when a port is taken."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        document = self.document()
        if self.certificates is not None:
            roles = document["host"]["roles"]
            issue(self.ca_folder, self.certificates.folder, self.node_name, roles)
        write_config(self.config_path, document)
        self.host = Host(load_config(self.config_path, hostname=self.node_name), sink=self.sink)
        self.host.start()

    def start_service(self, service: str) -> None:
        """Start one service (`etcd`, `gateway` or a gRPC service) and wait until it is serving."""
        self._host().start_role(service)

    def launch_service(self, service: str) -> Child:
        """Start one service (`gateway` or a gRPC service) without waiting."""
        return self._host().launch(service)

    def serving(self, service: str) -> Callable[[], bool]:
        """A check that `service` serves: the gateway's /healthz answers 200
        (which asks the api), a gRPC service's health says SERVING."""
        return self._host().ready(service)

    def stop_service(self, service: str, sig: int) -> None:
        """Stop one service with `sig` (SIGTERM for a clean stop, SIGKILL for a crash)."""
        self._host().stop_role(service, sig)

    def stop(self) -> None:
        """Stop everything, newest first."""
        if self.host is not None:
            self.host.stop()

    def _host(self) -> Host:
        if self.host is None:
            raise RuntimeError("the mesh has not been started")
        return self.host


def set_variables(
    document: dict[str, dict[str, Any]], variables: Mapping[str, str], *, strict: bool
) -> None:
    """Put each SFMESH_* variable of `variables` into the tables of the
    document's roles that read it (`SFMESH_MAX_CPUS` → `api.max_cpus`).
    A variable no role reads is a ValueError when `strict`, else skipped."""
    roles = [role for role in document["host"]["roles"] if role != "etcd"]
    for variable, value in variables.items():
        if not variable.startswith(PREFIX):
            continue
        pairs = variable_keys(variable, roles)
        if not pairs and strict:
            raise ValueError(f"{variable}: no role of this host reads it")
        for table, key in pairs:
            document.setdefault(table, {})[key] = value


def write_config(path: Path, document: Mapping[str, Mapping[str, Any]]) -> None:
    """Write a host config the launcher runs as is."""
    header = (
        "Written by devmesh at every start of this state folder's mesh.\n"
        f"`python -m launcher --config {path}` runs the same host\n"
        "(less the loopback test image server make run adds)."
    )
    path.write_text(render(document, header=header))


def remove_leftovers(node_name: str, uri: str = "qemu:///system") -> None:
    """What a throwaway mesh's node agent (tests, benchmarks) may leave when
    it stops mid-work: its libvirt domains, its network namespaces (and the
    dnsmasq in them) and its bridges, veths and VXLAN devices."""
    remove_domains(node_name, uri)
    tag = node_tag(node_name)
    for netns in _listed(["ip", "netns", "list"]):
        if netns.startswith(f"sfn{tag}"):
            for pid in _listed(["ip", "netns", "pids", netns]):
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", netns], check=False, capture_output=True)
    for link in _listed(["ip", "-o", "link", "show"], field=1):
        name = link.split("@")[0]
        if name.startswith(tuple(f"{kind}{tag}" for kind in ("sfb", "sfo", "sfx", "sfe"))):
            subprocess.run(["ip", "link", "delete", name], check=False, capture_output=True)


def _listed(argv: list[str], field: int = 0) -> list[str]:
    """One word per output line of a command (`field` after splitting on ': '
    when > 0, else the first word)."""
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    words = []
    for line in done.stdout.splitlines():
        parts = line.split(": ") if field else line.split()
        if len(parts) > field:
            words.append(parts[field].strip())
    return words


def remove_domains(node_name: str, uri: str = "qemu:///system") -> int:
    """Destroy and undefine the libvirt domains a node agent named
    `node_name` made; returns how many there were."""
    conn = libvirt.open(uri)
    try:
        doomed = [
            domain
            for domain in conn.listAllDomains()
            if instance_of(node_name, domain.name()) is not None
        ]
        for domain in doomed:
            try:
                if domain.isActive():
                    domain.destroy()
                domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise  # one gone meanwhile (its agent removed it) is what was wanted
        return len(doomed)
    finally:
        conn.close()


def start_etcd(
    data_dir: Path, ports: Ports, *, sink: IO[str] | None, tls: TlsDir | None = None
) -> Child:
    """Start a one-member etcd on loopback, with its data in `data_dir`, and
    wait until it is healthy: the launcher's etcd role alone; with `tls`
    (the etcd certificate of host `ETCD_MEMBER`), over TLS."""
    host = _etcd_host(ETCD_MEMBER, data_dir, ports, {}, sink=sink, tls=tls)
    host.start()
    return host.children["etcd"]


@dataclass(frozen=True)
class EtcdMemberRun:
    """One member of an etcd cluster started by `start_etcd_cluster`."""

    name: str
    client: str
    """Its client endpoint, host:port."""
    child: Child


def start_etcd_cluster(
    folder: Path, size: int, *, sink: IO[str] | None, ca: Path | None = None
) -> list[EtcdMemberRun]:
    """Start a new etcd cluster of `size` members on loopback (each its own
    client and peer ports, its data in `folder/<name>`), each member as the
    launcher runs the etcd role of a host with `[etcd] initial_cluster`, and
    wait until every member is healthy (a member is healthy only once the
    cluster has a quorum, so all start before any is waited for). With `ca`
    (a CA's folder, made if missing), each member speaks TLS to its clients
    and peers, with certificates issued from it into `folder/<name>.tls`."""
    ports = {f"{ETCD_MEMBER}{n}": Ports.free() for n in range(1, size + 1)}
    cluster = {name: f"127.0.0.1:{at.etcd_peer}" for name, at in ports.items()}
    hosts = {
        name: _etcd_host(
            name,
            folder / name,
            at,
            cluster,
            sink=sink,
            tls=None if ca is None else issue(ca, folder / f"{name}.tls", name, ["etcd"]),
        )
        for name, at in ports.items()
    }
    try:
        for host in hosts.values():
            host.launch("etcd")
        for host in hosts.values():
            wait_until(host.ready("etcd"), child=host.children["etcd"], timeout=READY_TIMEOUT)
    except BaseException:
        for host in hosts.values():
            host.stop()
        raise
    return [
        EtcdMemberRun(name, f"127.0.0.1:{ports[name].etcd_client}", host.children["etcd"])
        for name, host in hosts.items()
    ]


def _etcd_host(
    name: str,
    data_dir: Path,
    ports: Ports,
    cluster: Mapping[str, str],
    *,
    sink: IO[str] | None,
    tls: TlsDir | None,
) -> Host:
    """The host of one etcd member on loopback, of `cluster` (name → peer
    address) or alone, over TLS with `tls`."""
    etcd: dict[str, Any] = {
        "listen": f"127.0.0.1:{ports.etcd_client}",
        "peer": f"127.0.0.1:{ports.etcd_peer}",
        "data_dir": str(data_dir),
    }
    if cluster:
        etcd["initial_cluster"] = dict(cluster)
    document: dict[str, Any] = {
        "host": {"name": name, "roles": ["etcd"], "state_dir": str(data_dir)},
        "etcd": etcd,
    }
    if tls is not None:
        document["tls"] = {"dir": str(tls.folder)}
    return Host(parse_config(document, hostname=name), sink=sink)
