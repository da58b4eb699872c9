"""The launcher's children leave nothing running and busy ports are refused:
children die with a parent killed by SIGKILL (even one killed before a
child's death signal was set), a mesh will not start on a port in use, and a
service whose port is taken exits with one line naming it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.mesh import Mesh, Ports
from launcher.ports import PortInUse
from launcher.processes import ALIVE_PARENT, python_module

PARENT = textwrap.dedent(
    """
    import time
    from launcher.processes import Child
    children = [Child(f"sleeper{n}", ["sleep", "60"], env={}, sink=None) for n in range(2)]
    print(" ".join(str(child.process.pid) for child in children), flush=True)
    time.sleep(60)
    """
)


def gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie nobody reaped yet counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def running_sleep(pid: int) -> bool:
    """Whether `pid` runs `sleep` now: setpriv has set its death signal and
    exec'd. (A parent killed before that moment leaves the child alive: the
    kernel sends no death signal that was never asked for.)"""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    except FileNotFoundError:
        return False


def test_children_die_with_a_killed_parent() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    try:
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
        started = time.monotonic() + 10
        while not all(running_sleep(pid) for pid in pids) and time.monotonic() < started:
            time.sleep(0.01)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 2
        while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in pids)
    finally:
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_child_whose_parent_went_before_its_death_signal_does_not_run(tmp_path: Path) -> None:
    """The gap of a death signal: a parent killed between fork and the prctl.
    The child then finds another parent than the one that started it, and
    stops before running its command."""
    marker = tmp_path / "ran"
    elsewhere = subprocess.run([*ALIVE_PARENT, "1", "touch", str(marker)], check=False)
    assert elsewhere.returncode != 0 and not marker.exists()
    here = subprocess.run([*ALIVE_PARENT, str(os.getpid()), "touch", str(marker)], check=False)
    assert here.returncode == 0 and marker.exists()


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A loopback port something listens on, as a leftover gRPC server
    would (with SO_REUSEPORT, which let a second server share it)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def test_a_mesh_refuses_a_busy_port_before_starting_anything(
    held: socket.socket, tmp_path: Path
) -> None:
    port = held.getsockname()[1]
    mesh = Mesh(state_dir=tmp_path, ports=Ports(**{**vars(Ports.free()), "api": port}), sink=None)
    try:
        with pytest.raises(PortInUse) as raised:
            mesh.start()
        assert mesh.children == {}
    finally:
        mesh.stop()
    assert str(raised.value) == f"port {port} (api) is already in use on 127.0.0.1"


def test_a_service_whose_port_is_taken_exits_naming_it(held: socket.socket, tmp_path: Path) -> None:
    address = f"127.0.0.1:{held.getsockname()[1]}"
    argv = [*python_module("services.eventlog"), "--listen", address, "--state-dir", str(tmp_path)]
    service = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = service.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        service.kill()
        service.communicate()
        pytest.fail(f"the service started on {address}, shared with another listener")
    assert service.returncode != 0
    assert f"cannot listen on {address}" in output
