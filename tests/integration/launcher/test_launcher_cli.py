"""`python -m launcher` against real etcd and real services on free ports:
a host starts from its config, its children die with a SIGKILLed launcher,
a taken port or a bad config starts nothing, `--role` becomes one role, and
a role that exits stops the host."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.mesh import Ports
from launcher.processes import grpc_serving, http_ok
from launcher.toml_text import render
from services.common.transport import Transport

REPO = Path(__file__).resolve().parents[3]
UP_TIMEOUT = 60.0
CONTROL_PLANE = ["etcd", "eventlog", "scheduler", "api", "gateway"]


@dataclass
class HostFiles:
    """A host config in a temporary folder, its state folder inside it (not yet made)."""

    config: Path
    state: Path
    ports: Ports
    log: Path


def write_host(folder: Path, roles: list[str]) -> HostFiles:
    ports = Ports.free()
    state = folder / "state"
    document: dict[str, dict[str, Any]] = {
        "host": {"name": "itest", "roles": roles, "state_dir": str(state)},
        "etcd": {
            "listen": f"127.0.0.1:{ports.etcd_client}",
            "peer": f"127.0.0.1:{ports.etcd_peer}",
        },
        **{
            role: {
                "listen": f"127.0.0.1:{getattr(ports, role)}",
                "metrics_listen": f"127.0.0.1:{getattr(ports, f'{role}_metrics')}",
            }
            for role in roles
            if role != "etcd"
        },
    }
    config = folder / "host.toml"
    config.write_text(render(document))
    return HostFiles(config, state, ports, folder / "launcher.log")


@pytest.fixture
def control_plane(tmp_path: Path) -> HostFiles:
    """A control-plane host's config: every role but the node agent."""
    return write_host(tmp_path, CONTROL_PLANE)


def launch(files: HostFiles, *extra: str) -> subprocess.Popen[bytes]:
    with files.log.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "launcher", "--config", str(files.config), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def wait_for(
    check: Callable[[], bool], launcher: subprocess.Popen[bytes], files: HostFiles
) -> None:
    deadline = time.monotonic() + UP_TIMEOUT
    while not check():
        if launcher.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"not up (launcher {launcher.returncode}):\n{files.log.read_text()}")
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(word) for word in text.split()]


def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie nobody reaped yet counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def taken_ports(ports: Ports, timeout: float = 10.0) -> list[int]:
    """The host's listening ports still not bindable after `timeout` (a
    connection of the dead processes may hold one for a moment while it closes)."""
    every = [ports.gateway, ports.api, ports.scheduler, ports.eventlog, ports.etcd_client]
    every += [getattr(ports, f"{role}_metrics") for role in CONTROL_PLANE if role != "etcd"]
    deadline = time.monotonic() + timeout
    while (
        taken := [port for port in every if not port_free(port)]
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    return taken


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Pids to SIGKILL if a test leaves them behind."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_host_runs_from_its_config_until_sigterm(
    control_plane: HostFiles, cleanup: list[int]
) -> None:
    launcher = launch(control_plane)
    cleanup.append(launcher.pid)
    gateway = f"http://127.0.0.1:{control_plane.ports.gateway}"
    wait_for(http_ok(f"{gateway}/healthz"), launcher, control_plane)
    kids = children(launcher.pid)
    cleanup.extend(kids)
    assert len(kids) == len(CONTROL_PLANE)
    key = (control_plane.state / "system.key").read_text().strip()
    reply = httpx.post(f"{gateway}/auth", json={"namespace": "system", "key": key})
    assert reply.status_code == 200, reply.text
    assert (control_plane.state / "etcd").is_dir()
    for role in CONTROL_PLANE[1:]:
        metrics = f"http://127.0.0.1:{getattr(control_plane.ports, f'{role}_metrics')}/metrics"
        assert "process_cpu_seconds_total" in httpx.get(metrics).text
        assert metrics in control_plane.log.read_text()

    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(30) == 0
    assert all(gone(pid) for pid in kids)
    assert taken_ports(control_plane.ports) == []
    log = control_plane.log.read_text()
    assert "sfmesh: host itest is up: etcd, eventlog, scheduler, api, gateway" in log


def test_sigkill_of_the_launcher_takes_its_children_down(
    control_plane: HostFiles, cleanup: list[int]
) -> None:
    launcher = launch(control_plane)
    cleanup.append(launcher.pid)
    wait_for(
        http_ok(f"http://127.0.0.1:{control_plane.ports.gateway}/healthz"), launcher, control_plane
    )
    kids = children(launcher.pid)
    cleanup.extend(kids)

    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 5
    while not all(gone(pid) for pid in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in kids if not gone(pid)] == []
    assert taken_ports(control_plane.ports) == []


def test_a_taken_port_is_refused_naming_role_and_port_with_nothing_started(
    control_plane: HostFiles,
) -> None:
    port = control_plane.ports.scheduler
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        launcher = launch(control_plane)
        assert launcher.wait(30) == 1
    output = control_plane.log.read_text()
    assert f"sfmesh: port {port} (scheduler) is already in use on 127.0.0.1; nothing started" in (
        output
    )
    assert not control_plane.state.exists()
    assert port_free(control_plane.ports.etcd_client)


def test_a_bad_config_starts_nothing(tmp_path: Path) -> None:
    files = write_host(tmp_path, ["eventlog"])
    files.config.write_text(files.config.read_text() + '\n[api]\nmax_cpus = "four"\n')
    launcher = launch(files)
    assert launcher.wait(30) == 2
    output = files.log.read_text()
    assert f"sfmesh: {files.config}: nothing started:" in output
    assert "  api: [api] is set but host.roles does not list api" in output
    assert not files.state.exists()


def test_role_becomes_that_one_role(control_plane: HostFiles, cleanup: list[int]) -> None:
    """What a systemd unit runs: the launcher checks, then execs the role,
    so its pid is the service's and nothing else of the host starts."""
    launcher = launch(control_plane, "--role", "eventlog")
    cleanup.append(launcher.pid)
    wait_for(
        grpc_serving(f"127.0.0.1:{control_plane.ports.eventlog}", Transport()),
        launcher,
        control_plane,
    )
    cmdline = Path(f"/proc/{launcher.pid}/cmdline").read_bytes().split(b"\0")
    assert b"services.eventlog" in cmdline
    assert children(launcher.pid) == []
    assert port_free(control_plane.ports.etcd_client)
    assert port_free(control_plane.ports.api)

    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(30) == 0


def test_a_role_that_exits_while_starting_stops_the_host(tmp_path: Path) -> None:
    files = write_host(tmp_path, ["etcd", "eventlog"])
    # A database path that cannot be created: the eventlog exits at start-up.
    files.config.write_text(
        files.config.read_text().replace(
            "[eventlog]", '[eventlog]\ndatabase = "/proc/no/events.db"'
        )
    )
    launcher = launch(files)
    assert launcher.wait(60) == 1
    output = files.log.read_text()
    assert "sfmesh: eventlog exited with status 1 while starting; stopped this host" in output
    assert port_free(files.ports.etcd_client)


def test_role_refuses_its_taken_port(control_plane: HostFiles) -> None:
    port = control_plane.ports.api
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        launcher = launch(control_plane, "--role", "api")
        assert launcher.wait(30) == 1
    assert f"port {port} (api) is already in use on 127.0.0.1; api not started" in (
        control_plane.log.read_text()
    )


def test_a_role_that_exits_stops_the_host(tmp_path: Path, cleanup: list[int]) -> None:
    files = write_host(tmp_path, ["etcd", "eventlog"])
    launcher = launch(files)
    cleanup.append(launcher.pid)
    wait_for(lambda: "is up" in files.log.read_text(), launcher, files)
    kids = children(launcher.pid)
    cleanup.extend(kids)
    eventlog = next(
        pid for pid in kids if b"services.eventlog" in Path(f"/proc/{pid}/cmdline").read_bytes()
    )

    os.kill(eventlog, signal.SIGKILL)
    assert launcher.wait(30) == 1
    assert all(gone(pid) for pid in kids)
    assert "sfmesh: eventlog exited with status -9; stopping this host" in files.log.read_text()
