"""The five hosts together: their LAN, their CA, the image server their
hypervisors fetch from, the PostgreSQL server their eventlog replicas share,
starting and stopping them, and REST clients of their gateways."""

from __future__ import annotations

import contextlib
import functools
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import libvirt

from devmesh.certificates import authority
from devmesh.cloud.hosts import CloudHost
from devmesh.cloud.lan import NETBLOCK, ROOT_ADDRESS, create_lan, remove_lan
from devmesh.cloud.layout import (
    ADDRESSES,
    CENTRE,
    CONTROL_PLANE,
    HOST_ROLES,
    HYPERVISORS,
    endpoint,
)
from devmesh.mesh import remove_leftovers
from devmesh.postgres import Postgres, free_port
from guests.bootsector import boot_sector
from guests.serve import ImageServer
from launcher.ca import write_host
from launcher.roles import ROLES
from launcher.tls import TlsDir, client_context
from services.common.secrets import load_or_create_secret
from services.node_agent.naming import instance_of

BOOT_SECTOR = "bootsector.raw"
"""The image server's name of guests/bootsector.py's boot sector."""
SYSTEM_KEY = "system.key"
"""Copied from cp1's state folder to every api host's before they start:
the api replicas start together, and whichever first makes the `system`
namespace keys it with its own folder's file, so one key on every api host
makes the namespace's key the one `login` reads, whichever won. (With TLS
nothing else is shared: the services prove themselves by certificate, and
user tokens are signed with a secret the apis keep in etcd.)"""
FOLDERS = Path("/var/tmp")
PREFIX = "sfmesh-multihost-"
"""Each cloud's folder is `/var/tmp/sfmesh-multihost-*`, one qemu can traverse."""
OPERATOR = "operator"
"""The tests' own certificate's host, in `<folder>/operator`: an etcd
client certificate, as an operator's `etcdctl` holds."""
EVENTS_DATABASE = "sfmesh_events"
"""The PostgreSQL database of the eventlog replicas."""


@contextlib.contextmanager
def running_cloud(*, sink: IO[str] | None) -> Iterator[Cloud]:
    """A started cloud in a new folder, stopped and removed after the block.
    One cloud per machine: the LAN's names and addresses are fixed, so what
    an earlier run left (its folder included) is removed first."""
    for left in FOLDERS.glob(f"{PREFIX}*"):
        shutil.rmtree(left, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=FOLDERS))
    folder.chmod(0o755)
    cloud = Cloud(folder, sink=sink)
    try:
        cloud.start()
        yield cloud
    finally:
        cloud.stop()
        shutil.rmtree(folder, ignore_errors=True)


class Cloud:
    """The five hosts in `folder` (one sub-folder each, the CA in `ca/`), on
    a LAN of their own; their `debian:11` is the boot-sector guest, served
    from the root namespace's address on the LAN, and their events are in
    a PostgreSQL server listening there too (its cluster in `postgres/`):
    a server of the operator's, outside the hosts, that none of their
    losses takes down."""

    def __init__(self, folder: Path, *, sink: IO[str] | None) -> None:
        """`sink` takes every process's output, each line prefixed with its
        host and role (None discards it)."""
        self.folder = folder
        self.hosts = {name: CloudHost(name, folder / name, sink) for name in HOST_ROLES}
        self.images: ImageServer | None = None
        self.postgres = Postgres(
            folder / "postgres", free_port(), sink=sink, address=ROOT_ADDRESS, trusted=str(NETBLOCK)
        )
        self.database = self.postgres.url(EVENTS_DATABASE)
        """The eventlog replicas' database, by URL."""

    @property
    def ca(self) -> Path:
        """The CA's certificate, which clients trust."""
        return self.folder / "ca" / "ca.crt"

    @property
    def operator(self) -> TlsDir:
        """The tests' certificates (`OPERATOR`)."""
        return TlsDir(self.folder / OPERATOR)

    @functools.cached_property
    def etcd_client(self) -> ssl.SSLContext:
        """An HTTPS client context for etcd's members, with the operator's certificate."""
        context = client_context(self.operator, "etcd")
        assert context is not None
        return context

    @functools.cached_property
    def trusting(self) -> ssl.SSLContext:
        """An HTTPS client context trusting the cloud's CA."""
        return ssl.create_default_context(cafile=self.ca)

    def gateway_url(self, host: str) -> str:
        """The REST base URL of `host`'s gateway."""
        return f"https://{endpoint(host, 'gateway')}"

    def login(self, host: str) -> str:
        """A system token from POST /auth at `host`'s gateway, with the
        system key (`SYSTEM_KEY`)."""
        key = (self.hosts[CENTRE].state_dir / SYSTEM_KEY).read_text().strip()
        reply = httpx.post(
            f"{self.gateway_url(host)}/auth",
            json={"namespace": "system", "key": key},
            verify=self.trusting,
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    def rest(self, host: str, token: str, timeout: float = 30) -> httpx.Client:
        """An HTTPS client for `host`'s gateway carrying `token`."""
        return httpx.Client(
            base_url=self.gateway_url(host),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=self.trusting,
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
        """Remove what an earlier run left, build the LAN, the image server,
        PostgreSQL, the CA and every host's folder, then start the control plane role by
        role across its hosts (its three etcd members together: each is
        healthy only once a quorum is up) and, once it serves, the
        hypervisors."""
        self.remove_leftovers()
        create_lan(ADDRESSES)
        (self.folder / "images").mkdir()
        self.images = ImageServer(self.folder / "images", host=ROOT_ADDRESS)
        self.images.publish(BOOT_SECTOR, boot_sector())
        self.postgres.start()
        self.postgres.create_database(EVENTS_DATABASE)
        made = authority(self.folder / "ca")
        write_host(made, self.operator.folder, OPERATOR, ["etcd"], [ROOT_ADDRESS])
        key = load_or_create_secret(self.hosts[CENTRE].state_dir / SYSTEM_KEY)
        for host in self.hosts.values():
            host.state_dir.mkdir(parents=True, exist_ok=True)
            host.write(self.images.url(BOOT_SECTOR), self.database, "new")
            host.issue(made, ADDRESSES[host.name])
            if "api" in host.roles:
                (host.state_dir / SYSTEM_KEY).write_text(key)
                (host.state_dir / SYSTEM_KEY).chmod(0o600)
        for group in (CONTROL_PLANE, HYPERVISORS):
            for role in ROLES:
                running = [self.hosts[name] for name in group if role in HOST_ROLES[name]]
                for host in running:
                    host.launch(role)
                for host in running:
                    host.wait_serving([role])

    def rejoin(self, name: str) -> None:
        """Start a lost control-plane host again: its etcd member rejoins
        the running cluster (`cluster_state = "existing"`) from its data."""
        host = self.hosts[name]
        assert self.images is not None
        host.write(self.images.url(BOOT_SECTOR), self.database, "existing")
        for role in host.roles:
            host.launch(role)
            host.wait_serving([role])

    def stop(self) -> None:
        """Stop every host, hypervisors first, then cp1 (the most services)
        while the others keep etcd's quorum, then PostgreSQL; remove the LAN."""
        for name in (*HYPERVISORS, *CONTROL_PLANE):
            self.hosts[name].stop()
        self.postgres.stop("immediate")
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
