"""The whole mesh on one machine: etcd plus every service, on loopback.

`make run` uses it with the default ports; the end-to-end tests use it with
free ports and a temporary state folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import libvirt

from devmesh.processes import Child, grpc_serving, http_ok, python_module, wait_until
from services.node_agent.dataplane import node_tag
from services.node_agent.naming import instance_of

READY_TIMEOUT = 60.0
SMALL_MACHINE = {
    "SFMESH_MIN_FREE_DISK_GIB": "2",
    "SFMESH_RAM_RESERVED_MIB": "512",
}
"""Scheduler thresholds that fit a developer's machine (Shaken Fist's keep
20 GiB of disk and 2 GiB of RAM); the environment overrides them."""
LOOPBACK_IMAGES = {"SFMESH_IMAGE_ALLOWED_NETWORKS": "127.0.0.0/8"}
"""Node agents may fetch images from loopback, where the test image server
lives (the mesh's own endpoints stay refused); the environment overrides it."""


@dataclass(frozen=True)
class Ports:
    """Where each part listens."""

    gateway: int = 13000
    api: int = 13010
    scheduler: int = 13011
    eventlog: int = 13012
    node_agent: int = 13020
    etcd_client: int = 13379
    etcd_peer: int = 13380

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


class PortInUse(RuntimeError):
    """A port the mesh needs is taken: a leftover mesh, or another program."""


def check_ports(ports: Ports) -> None:
    """Raise PortInUse, naming the first of `ports` something listens on."""
    for name, port in asdict(ports).items():
        with socket.socket() as probe:
            # Lingering TIME_WAIT connections do not count; a listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise PortInUse(f"port {port} ({name}) is already in use on 127.0.0.1") from None


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
    """Extra SFMESH_* settings for every service, over the defaults."""
    node_agent: bool = True
    """Whether this machine's node agent runs (benchmarks of the api alone
    feed the scheduler simulated nodes instead)."""
    children: dict[str, Child] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        """The REST base URL."""
        return f"http://127.0.0.1:{self.ports.gateway}"

    def address(self, service: str) -> str:
        """The gRPC address of a service."""
        return f"127.0.0.1:{getattr(self.ports, service)}"

    @property
    def system_key(self) -> str:
        """The system namespace's key, kept in the state folder."""
        return (self.state_dir / "system.key").read_text().strip()

    def environment(self) -> dict[str, str]:
        """The SFMESH_* settings every service of this mesh gets."""
        env = {**SMALL_MACHINE, **LOOPBACK_IMAGES}
        env.update(os.environ)
        env.update(
            SFMESH_STATE_DIR=str(self.state_dir),
            SFMESH_ETCD=f"127.0.0.1:{self.ports.etcd_client}",
            SFMESH_API_ADDRESS=self.address("api"),
            SFMESH_SCHEDULER_ADDRESS=self.address("scheduler"),
            SFMESH_EVENTLOG_ADDRESS=self.address("eventlog"),
            SFMESH_API_LISTEN=self.address("api"),
            SFMESH_SCHEDULER_LISTEN=self.address("scheduler"),
            SFMESH_EVENTLOG_LISTEN=self.address("eventlog"),
            SFMESH_NODE_AGENT_LISTEN=self.address("node_agent"),
            SFMESH_GATEWAY_PORT=str(self.ports.gateway),
            SFMESH_GATEWAY_ADDRESS=self.address("gateway"),
            SFMESH_NODE_NAME=self.node_name,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.settings)
        return env

    def start(self) -> None:
        """Start etcd, then the services, each once the one before is ready;
        PortInUse, with nothing started, when a port is taken."""
        check_ports(self.ports)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        services = ["etcd", "eventlog", "scheduler", "api"]
        if self.node_agent:
            services.append("node_agent")
        for service in [*services, "gateway"]:
            self.start_service(service)

    def start_service(self, service: str) -> None:
        """Start one service (etcd on its data folder, `gateway` or a gRPC
        service) and wait until it is serving."""
        if service == "etcd":
            self.children["etcd"] = start_etcd(
                self.state_dir / "etcd", self.ports, env=self.environment(), sink=self.sink
            )
            return
        child = self.launch_service(service)
        wait_until(self.serving(service), child=child, timeout=READY_TIMEOUT)

    def launch_service(self, service: str) -> Child:
        """Start one service (`gateway` or a gRPC service) without waiting."""
        module = "api_gateway" if service == "gateway" else service
        return self._launch(service, python_module(f"services.{module}"))

    def serving(self, service: str) -> Callable[[], bool]:
        """A check that `service` serves: the gateway's /healthz answers 200
        (which asks the api), a gRPC service's health says SERVING."""
        if service == "gateway":
            return http_ok(f"{self.gateway_url}/healthz")
        return grpc_serving(self.address(service))

    def stop_service(self, service: str, sig: int) -> None:
        """Stop one service with `sig` (SIGTERM for a clean stop, SIGKILL for a crash)."""
        self.children.pop(service).stop(sig)

    def stop(self) -> None:
        """Stop everything, newest first."""
        for name in reversed(list(self.children)):
            self.children.pop(name).stop()

    def _launch(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, env=self.environment(), sink=self.sink)
        self.children[name] = child
        return child


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
            if domain.isActive():
                domain.destroy()
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        return len(doomed)
    finally:
        conn.close()


def start_etcd(data_dir: Path, ports: Ports, *, env: dict[str, str], sink: IO[str] | None) -> Child:
    """Start a one-member etcd on loopback and wait until it is healthy."""
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    argv = [
        "etcd",
        "--name=sfmesh",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sfmesh={peer}",
        "--log-level=warn",
    ]
    child = Child("etcd", argv, env=env, sink=sink)
    wait_until(http_ok(f"{client}/health"), child=child, timeout=READY_TIMEOUT)
    return child
