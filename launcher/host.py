"""A host's share of the mesh, run as children of this process.

`Host.start()` checks every port first and refuses with nothing started;
then it starts the roles in order, each once the one before answers. Each
child dies with this process (`processes.py`). `supervise` waits for a stop
request or a child's exit: a child that exits stops the whole host, which
exits non-zero — restarting is the job of whatever runs the launcher (a
developer, or systemd with one unit per role and `Restart=on-failure`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import IO

from launcher.commands import command, environment
from launcher.config import HostConfig, bindings
from launcher.ports import check_ports
from launcher.processes import Child, grpc_serving, http_ok, wait_until
from launcher.roles import ROLES
from launcher.tls import client_context, scheme, transport

READY_TIMEOUT = 60.0
"""Seconds a role may take to answer after it starts."""


class Host:
    """The roles of one host config, started and stopped as children."""

    def __init__(
        self,
        config: HostConfig,
        *,
        sink: IO[str] | None,
        inherited: Mapping[str, str] | None = None,
    ) -> None:
        """`sink` takes the children's output, each line prefixed with its
        role (None discards it); `inherited` is the environment they start
        from, this process's by default, less its `SFMESH_*` variables."""
        self.config = config
        self.children: dict[str, Child] = {}
        self._sink = sink
        self._env = environment(os.environ if inherited is None else inherited)

    def start(self, roles: Iterable[str] | None = None) -> None:
        """Start `roles` (every role of the host by default) in start order,
        each once the one before serves. PortInUse or NotThisHost, with
        nothing started, when a port cannot be had; a role that exits or
        does not answer in time stops the ones already started."""
        chosen = [role for role in self.config.roles if roles is None or role in roles]
        check_ports(bindings(self.config, chosen))
        if any(ROLES[role].stateful for role in chosen):
            self.config.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            for role in chosen:
                self.start_role(role)
        except BaseException:
            self.stop()
            raise

    def start_role(self, role: str) -> None:
        """Start one role and wait until it serves."""
        child = self.launch(role)
        wait_until(self.ready(role), child=child, timeout=READY_TIMEOUT)

    def launch(self, role: str) -> Child:
        """Start one role without waiting."""
        child = Child(role, command(self.config, role), env=self._env, sink=self._sink)
        self.children[role] = child
        return child

    def ready(self, role: str) -> Callable[[], bool]:
        """A check that `role` serves: etcd's /health, the gateway's /healthz
        (which asks the api), a gRPC service's health SERVING; each asked
        as `role` itself, with its certificate, when the host has `[tls]`."""
        address = self.config.listen(role).local()
        tls = self.config.tls
        if role in ("etcd", "gateway"):
            path = "health" if role == "etcd" else "healthz"
            return http_ok(f"{scheme(tls)}://{address}/{path}", client_context(tls, role))
        return grpc_serving(str(address), transport(tls, role))

    def stop_role(self, role: str, sig: int = signal.SIGTERM) -> None:
        """Stop one role with `sig` (SIGTERM for a clean stop, SIGKILL for a crash)."""
        self.children.pop(role).stop(sig)

    def stop(self) -> None:
        """Stop every role, newest first."""
        for role in reversed(list(self.children)):
            self.children.pop(role).stop()

    def exited(self) -> tuple[str, int] | None:
        """The first role whose process has exited, with its status; None while all run."""
        for role, child in self.children.items():
            if not child.alive():
                assert child.process is not None
                return role, child.process.returncode
        return None


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (call from the main thread)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def supervise(host: Host, stop: threading.Event, *, say: Callable[[str], None] = print) -> int:
    """Wait until `stop` is set (0) or a role exits (1, after saying which);
    the caller stops the host."""
    while not stop.wait(0.5):
        gone = host.exited()
        if gone is not None:
            role, status = gone
            say(f"sfmesh: {role} exited with status {status}; stopping this host")
            return 1
    return 0
