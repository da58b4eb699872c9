"""One host of the cloud: its folder and its roles, each a process the
launcher becomes (`--role`) inside the host's namespaces."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from devmesh.cloud.lan import kill_netns, netns
from devmesh.cloud.layout import HOST_ROLES, host_document
from devmesh.mesh import write_config
from launcher.ca import Authority, write_host
from launcher.commands import environment
from launcher.config import load_config
from launcher.host import READY_TIMEOUT, Host
from launcher.processes import Child, wait_until
from launcher.tls import TlsDir

NAMED = ("unshare", "--uts", "--", "/bin/sh", "-c", 'hostname "$0" && exec "$@"')
"""Then a host name and a command: run the command under that host name."""


@dataclass
class CloudHost:
    """One host: its folder (`host.toml`, `state/`, `tls/`) and a process
    per running role."""

    name: str
    folder: Path
    sink: IO[str] | None
    """Where its processes' output goes, prefixed; None discards it."""
    children: dict[str, Child] = field(default_factory=dict)
    """Its roles' processes, in the order they started."""

    @property
    def config(self) -> Path:
        return self.folder / "host.toml"

    @property
    def state_dir(self) -> Path:
        return self.folder / "state"

    @property
    def tls(self) -> TlsDir:
        """Its certificates: its config's `[tls] dir`."""
        return TlsDir(self.folder / "tls")

    @property
    def roles(self) -> tuple[str, ...]:
        return HOST_ROLES[self.name]

    def write(self, image_url: str, database: str, cluster_state: str) -> None:
        """Write its host config (`layout.host_document`)."""
        document = host_document(
            self.name,
            self.folder,
            image_url=image_url,
            database=database,
            cluster_state=cluster_state,
        )
        write_config(self.config, document)

    def issue(self, authority: Authority, address: str) -> None:
        """Issue its roles' certificates, valid at `address`, into its `[tls] dir`."""
        write_host(authority, self.tls.folder, self.name, self.roles, [address])

    def launch(self, role: str) -> Child:
        """Start `role` (again) as the launcher runs it for a systemd unit,
        in the host's network namespace and a UTS namespace named after it
        (so its events say which host made them), without waiting."""
        if role in self.children:
            self.children[role].start()
            return self.children[role]
        argv = ["ip", "netns", "exec", netns(self.name), *NAMED, self.name, sys.executable]
        argv += ["-m", "launcher", "--config", str(self.config), "--role", role]
        child = Child(f"{self.name}/{role}", argv, env=environment(os.environ), sink=self.sink)
        self.children[role] = child
        return child

    def wait_serving(self, roles: Iterable[str] | None = None) -> None:
        """Wait until each of `roles` (every running one by default) answers
        at its address, as that role with its certificate (the root
        namespace reaches it over the LAN); NotReady if one exits."""
        checks = Host(load_config(self.config, hostname=self.name), sink=None)
        for role in self.children if roles is None else roles:
            wait_until(checks.ready(role), child=self.children[role], timeout=READY_TIMEOUT)

    def restart(self, role: str) -> tuple[float, float]:
        """Stop `role` cleanly (SIGTERM), start it again and wait until it
        serves; the seconds it took to stop, and then to serve."""
        started = time.monotonic()
        self.children[role].stop(signal.SIGTERM)
        stopped = time.monotonic()
        self.launch(role)
        self.wait_serving([role])
        return stopped - started, time.monotonic() - stopped

    def kill_role(self, role: str) -> None:
        """SIGKILL `role`'s process and whatever it started (its process
        group: each role starts a session of its own), as a crash would;
        `launch` starts it again."""
        process = self.children[role].process
        assert process is not None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def kill(self) -> list[int]:
        """SIGKILL every process of the host at once (its etcd member, its
        services): the host is lost. Returns their pids."""
        pids = kill_netns(netns(self.name))
        for child in self.children.values():
            if child.process is not None:
                child.process.wait()
        return pids

    def stop(self) -> None:
        """Stop its roles, newest first."""
        for role in reversed(list(self.children)):
            self.children.pop(role).stop()
