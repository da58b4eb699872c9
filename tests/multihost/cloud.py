"""A cloud of five hosts on this one machine, each a network namespace of
the LAN (`lan.py`) with an address of its own and a host name of its own (a
UTS namespace), each running its share of the mesh with the launcher, from
its own host config, as a real host would (`ip netns exec <ns> unshare
--uts … python -m launcher --config <host>/host.toml`):

| host | address     | runs |
|------|-------------|------|
| cp1  | 10.213.0.11 | etcd member, eventlog, scheduler, api, gateway |
| cp2  | 10.213.0.12 | etcd member, api, gateway |
| cp3  | 10.213.0.13 | etcd member, api, gateway |
| hv1  | 10.213.0.21 | node agent |
| hv2  | 10.213.0.22 | node agent |

The three members make one etcd cluster, and every service is given all
three endpoints: a control-plane host's services try its own member first;
the hypervisors try cp3's first, so that losing cp3 makes their node agents
fail over as well as the cluster. Each gateway fronts its own host's api;
the apis and node agents call cp1's scheduler and eventlog (single today).

**What a hypervisor host really is.** Its node agent runs inside the host's
namespace: its gRPC listener, its etcd, scheduler, eventlog and api
clients, and its image downloads (from the tests' image server at the root
namespace's address) all go over the LAN from the host's own address. But
libvirt is one daemon in the root namespace, reached over its unix socket
(the file system is shared), so both node agents drive the same libvirtd,
their domains are qemu processes of the root namespace, and each node
reports this whole machine's CPUs and memory as its own. Instances without
networks boot; a network would not work, as the node agent makes its
bridges, VXLAN and dnsmasq in the host's namespace while libvirt attaches
domains in the root one (tests/e2e/test_overlay.py runs node agents in the
root namespace with only their underlay in a namespace for that).

Each host has a folder of its own: `host.toml` and `state/` (later `tls/`,
the `[tls] dir` that `python -m launcher.ca issue` fills, named in the one
place a host's config is written: `host_document`).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import libvirt

from devmesh.mesh import SMALL_MACHINE, remove_leftovers, set_variables, write_config
from guests.bootsector import boot_sector
from guests.serve import ImageServer
from launcher.commands import environment
from launcher.config import load_config
from launcher.host import READY_TIMEOUT, Host
from launcher.processes import Child, wait_until
from launcher.roles import ETCD_PEER_PORT, ROLES
from services.common.secrets import load_or_create_secret
from services.node_agent.naming import instance_of
from tests.multihost.lan import NETBLOCK, ROOT_ADDRESS, create_lan, kill_netns, netns, remove_lan

CONTROL_PLANE = ("cp1", "cp2", "cp3")
HYPERVISORS = ("hv1", "hv2")
CENTRE = "cp1"
"""The control-plane host of the single scheduler and eventlog."""
FIRST_MEMBER_OF_HYPERVISORS = "cp3"
"""The etcd member the node agents try first."""
BOOT_SECTOR = "bootsector.raw"
"""The image server's name of guests/bootsector.py's boot sector."""
HOST_ROLES = {
    "cp1": ("etcd", "eventlog", "scheduler", "api", "gateway"),
    "cp2": ("etcd", "api", "gateway"),
    "cp3": ("etcd", "api", "gateway"),
    "hv1": ("node_agent",),
    "hv2": ("node_agent",),
}
ADDRESSES = {
    **{host: str(NETBLOCK[11 + n]) for n, host in enumerate(CONTROL_PLANE)},
    **{host: str(NETBLOCK[21 + n]) for n, host in enumerate(HYPERVISORS)},
}
NAMED = ("unshare", "--uts", "--", "/bin/sh", "-c", 'hostname "$0" && exec "$@"')
"""Then a host name and a command: run the command under that host name."""
SHARED_SECRETS = {"service.key": "", "jwt.secret": "api", "system.key": "api"}
"""Secret file → the role that needs it ("" for every role). STOPGAP: api
replicas verify user tokens with `jwt.secret` and plaintext services trust
each other by `service.key`, so the layer copies one of each (and the
system key) into every host's state folder, as an operator would by hand,
until issue 14 shares the token secret through etcd and certificates
replace the service key."""


def endpoint(host: str, role: str) -> str:
    """host:port of `role` on `host`: its default port at the host's address."""
    return f"{ADDRESSES[host]}:{ROLES[role].port}"


def etcd_endpoints(host: str) -> list[str]:
    """Every member's client endpoint, in the order `host`'s services try
    them: its own member first, else `FIRST_MEMBER_OF_HYPERVISORS`'s."""
    first = host if host in CONTROL_PLANE else FIRST_MEMBER_OF_HYPERVISORS
    order = [first, *(member for member in CONTROL_PLANE if member != first)]
    return [endpoint(member, "etcd") for member in order]


def host_document(
    host: str, state_dir: Path, *, image_url: str, cluster_state: str = "new"
) -> dict[str, dict[str, Any]]:
    """The host config of `host` (pure). Its node agents' `debian:11` is
    `image_url`, which they may fetch from the root namespace's address."""
    roles = HOST_ROLES[host]
    document: dict[str, dict[str, Any]] = {
        "host": {
            "name": host,
            "roles": list(roles),
            "address": ADDRESSES[host],
            "state_dir": str(state_dir),
        },
        "mesh": {"etcd": etcd_endpoints(host)},
    }
    for part in ("api", "scheduler", "eventlog", "gateway"):
        if part not in roles:
            document["mesh"][part] = endpoint(CENTRE, part)
    if "etcd" in roles:
        members = {member: f"{ADDRESSES[member]}:{ETCD_PEER_PORT}" for member in CONTROL_PLANE}
        document["etcd"] = {"initial_cluster": members, "cluster_state": cluster_state}
    settings = {
        **SMALL_MACHINE,
        "SFMESH_IMAGE_SHORTHANDS": f"debian:11={image_url}",
        "SFMESH_IMAGE_ALLOWED_NETWORKS": f"{ROOT_ADDRESS}/32",
    }
    set_variables(document, settings, strict=False)
    return document


@dataclass
class CloudHost:
    """One host: its folder (`host.toml`, `state/`) and its launcher."""

    name: str
    folder: Path
    launcher: Child | None = None

    @property
    def config(self) -> Path:
        return self.folder / "host.toml"

    @property
    def state_dir(self) -> Path:
        return self.folder / "state"

    def write(self, image_url: str, cluster_state: str) -> None:
        """Write its host config."""
        document = host_document(
            self.name, self.state_dir, image_url=image_url, cluster_state=cluster_state
        )
        write_config(self.config, document)

    def launch(self) -> None:
        """Start its launcher in its network namespace and a UTS namespace
        named after it (so its events say which host made them), without
        waiting."""
        argv = ["ip", "netns", "exec", netns(self.name), *NAMED, self.name]
        self.launcher = Child(
            self.name,
            [*argv, sys.executable, "-m", "launcher", "--config", str(self.config)],
            env=environment(os.environ),
            sink=sys.stderr,
        )

    def wait_serving(self) -> None:
        """Wait until each of its roles answers at its address (the root
        namespace reaches it over the LAN); NotReady if the launcher exits."""
        assert self.launcher is not None
        checks = Host(load_config(self.config, hostname=self.name), sink=None)
        for role in HOST_ROLES[self.name]:
            wait_until(checks.ready(role), child=self.launcher, timeout=READY_TIMEOUT)

    def kill(self) -> list[int]:
        """SIGKILL every process of the host at once (the launcher, its
        etcd member, its services): the host is lost. Returns their pids."""
        assert self.launcher is not None and self.launcher.process is not None
        pids = kill_netns(netns(self.name))
        self.launcher.process.wait()
        return pids

    def stop(self) -> None:
        """Stop its launcher, which stops its roles newest first."""
        if self.launcher is not None:
            self.launcher.stop()


class Cloud:
    """The five hosts in `folder` (one sub-folder each), on a LAN of their
    own; their `debian:11` is the boot-sector guest, served from the root
    namespace's address on the LAN."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hosts = {
            name: CloudHost(name, folder / name) for name in (*CONTROL_PLANE, *HYPERVISORS)
        }
        self.images: ImageServer | None = None

    def gateway_url(self, host: str) -> str:
        """The REST base URL of `host`'s gateway."""
        return f"http://{endpoint(host, 'gateway')}"

    def login(self, host: str) -> str:
        """A system token from POST /auth at `host`'s gateway, with the
        system key (the same file on every api host)."""
        key = (self.hosts[host].state_dir / "system.key").read_text().strip()
        reply = httpx.post(
            f"{self.gateway_url(host)}/auth", json={"namespace": "system", "key": key}
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    def rest(self, host: str, token: str, timeout: float = 30) -> httpx.Client:
        """An HTTP client for `host`'s gateway carrying `token`."""
        return httpx.Client(
            base_url=self.gateway_url(host),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    @staticmethod
    def domains() -> dict[str, str]:
        """Instance uuid → hypervisor host, of every libvirt domain the
        hypervisors' node agents made (all in the one libvirtd)."""
        conn = libvirt.open("qemu:///system")
        try:
            names = [domain.name() for domain in conn.listAllDomains()]
        finally:
            conn.close()
        found = {}
        for name in names:
            for host in HYPERVISORS:
                uuid = instance_of(host, name)
                if uuid is not None:
                    found[uuid] = host
        return found

    def start(self) -> None:
        """Remove what an earlier run left, build the LAN and the image
        server, write every host's folder, then start the control plane (its
        three etcd members together: each is healthy only once a quorum is
        up) and, once it serves, the hypervisors."""
        self.remove_leftovers()
        create_lan(ADDRESSES)
        (self.folder / "images").mkdir()
        self.images = ImageServer(self.folder / "images", host=ROOT_ADDRESS)
        self.images.publish(BOOT_SECTOR, boot_sector())
        for host in self.hosts.values():
            host.state_dir.mkdir(parents=True)
            host.write(self.images.url(BOOT_SECTOR), "new")
        share_secrets(self.hosts[CENTRE], self.hosts.values())
        for group in (CONTROL_PLANE, HYPERVISORS):
            for name in group:
                self.hosts[name].launch()
            for name in group:
                self.hosts[name].wait_serving()

    def rejoin(self, name: str) -> None:
        """Start a lost control-plane host again: its etcd member rejoins
        the running cluster (`cluster_state = "existing"`) from its data."""
        host = self.hosts[name]
        assert self.images is not None
        host.write(self.images.url(BOOT_SECTOR), "existing")
        host.launch()
        host.wait_serving()

    def stop(self) -> None:
        """Stop every host, hypervisors first, then cp1 (the most services)
        while the others keep etcd's quorum; remove the LAN."""
        for name in (*HYPERVISORS, *CONTROL_PLANE):
            self.hosts[name].stop()
        if self.images is not None:
            self.images.close()
        self.remove_leftovers()

    @staticmethod
    def remove_leftovers() -> None:
        """The LAN, and the domains and devices of the hypervisors' node
        agents, this run's or an earlier one's."""
        remove_lan()
        for name in HYPERVISORS:
            remove_leftovers(name)


def share_secrets(source: CloudHost, hosts: Iterable[CloudHost]) -> None:
    """Make the shared secrets in `source`'s state folder and copy each to
    the other hosts that run a role needing it (see SHARED_SECRETS)."""
    for secret, role in SHARED_SECRETS.items():
        made = source.state_dir / secret
        load_or_create_secret(made)
        for host in hosts:
            if host is not source and (not role or role in HOST_ROLES[host.name]):
                shutil.copy2(made, host.state_dir / secret)
