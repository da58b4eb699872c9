"""Child processes with prefixed output, readiness checks and a clean stop.

Every child dies with the thread that started it, however that ends (a
`kill -9` included): it is started through util-linux's `setpriv
--pdeathsig KILL`, which asks the kernel for SIGKILL when the parent goes
(`prctl(PR_SET_PDEATHSIG)`) and then execs the command in the same process,
so no service outlives a killed launcher (or `make run`) to hold its ports.
Start children from a thread that lives as long as they should (the main
thread): the kernel signals them when that thread exits.

Why the kernel and not a pipe the children watch: etcd is not ours and
watches no pipe; a death signal needs nothing from the child. The death
signal's one gap, a parent killed between fork and the prctl, is closed by
`ALIVE_PARENT`: once the signal is asked for, a shell checks that its parent
is still the process that started it, and only then execs the command.

Not a `preexec_fn`: that makes Python fork without exec'ing at once, and a
forked copy of a process whose gRPC threads are busy can crash before it
reaches exec (gRPC warns "skipping fork() handlers").
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.transport import Transport

STOP_TIMEOUT = 10.0
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--")
"""The prefix that makes a command get SIGKILL when its parent goes."""
ALIVE_PARENT = ("/bin/sh", "-c", 'test "$PPID" = "$0" && exec "$@"')
"""Then, with this process's pid and the command after it: exec the command
only if the parent is still this process (not gone before the prctl)."""


class Child:
    """One running process whose output lines are copied with a name prefix
    to `sink`, or discarded when `sink` is None (no copying thread then)."""

    def __init__(
        self, name: str, argv: Sequence[str], *, env: dict[str, str], sink: IO[str] | None
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._env = env
        self._sink = sink
        self.process: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart) the process."""
        self.process = subprocess.Popen(
            [*DIE_WITH_PARENT, *ALIVE_PARENT, str(os.getpid()), *self.argv],
            env=self._env,
            stdout=subprocess.DEVNULL if self._sink is None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        if self._sink is not None:
            threading.Thread(target=self._copy, args=(self.process,), daemon=True).start()

    def _copy(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None and self._sink is not None
        for line in process.stdout:
            self._sink.write(f"[{self.name:<10}] {line}")
            self._sink.flush()

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig`, wait, and kill it when it does not go."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class NotReady(RuntimeError):
    """A child exited, or did not answer in time, while it was awaited."""


def wait_until(check: Callable[[], bool], *, child: Child, timeout: float) -> None:
    """Poll `check` until it holds; NotReady when `child` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            status = child.process and child.process.returncode
            raise NotReady(f"{child.name} exited with status {status} while starting")
        if check():
            return
        time.sleep(0.1)
    raise NotReady(f"{child.name} did not answer within {timeout:.0f} s of starting")


def grpc_serving(address: str, transport: Transport) -> Callable[[], bool]:
    """A check that the gRPC server at `address`, called through
    `transport`, reports SERVING."""

    def check() -> bool:
        with transport.blocking_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    return check


def http_ok(url: str, context: ssl.SSLContext | None = None) -> Callable[[], bool]:
    """A check that `url` answers 200 (an https one through `context`)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                return response.status == 200
        except OSError:
            return False

    return check


def python_module(module: str) -> list[str]:
    """The argv that runs `python -m module` with this interpreter."""
    return [sys.executable, "-m", module]
