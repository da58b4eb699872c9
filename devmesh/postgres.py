"""A throwaway PostgreSQL cluster, on loopback unless told another address
(the multi-host cloud's LAN), for tests and benchmarks, as
`mesh.start_etcd` runs a throwaway etcd.

Debian's server binaries (`/usr/lib/postgresql/<version>/bin`, not on PATH)
make a cluster in a folder of its own (`initdb`, trust authentication on
loopback, and from a netblock when asked) and run `postgres` in the
foreground as a launcher `Child`, so it dies with the process that started
it. PostgreSQL refuses to run as root: as root, both run as the `postgres`
system user (Debian's package makes it) through `setpriv`, which execs in
place. Changing user clears the parent-death signal, so the death signal is
asked for again after the change. `fsync` stays on: what the tests measure
and check is durable.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import psycopg

from launcher.processes import DIE_WITH_PARENT, Child, wait_until

SERVER_BINARIES = Path("/usr/lib/postgresql")
"""Where Debian installs each PostgreSQL version's server binaries."""
SYSTEM_USER = "postgres"
"""The user the server runs as when we are root."""
READY_TIMEOUT = 60.0
SHUTDOWN_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
"""`pg_ctl stop -m MODE`'s signal to the postmaster, by mode."""


def server_binaries() -> Path:
    """The newest installed version's `bin` folder; FileNotFoundError when none is."""
    found = sorted(
        SERVER_BINARIES.glob("*/bin/postgres"), key=lambda path: int(path.parent.parent.name)
    )
    if not found:
        raise FileNotFoundError(f"no PostgreSQL server under {SERVER_BINARIES} (apt postgresql)")
    return found[-1].parent


def _as_server_user(argv: list[str]) -> list[str]:
    """`argv` run as the postgres user when we are root, else as it is."""
    if os.geteuid() != 0:
        return argv
    switch = ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups"]
    return [*switch, "--", *DIE_WITH_PARENT, *argv]


class Postgres:
    """A cluster in `folder` listening on `address`:`port`; `start()` makes it
    (on first use) and runs it, `stop()` ends it, `restart()` does both.
    Clients from `trusted` (a netblock) connect without a password, as
    clients on loopback do."""

    def __init__(
        self,
        folder: Path,
        port: int,
        *,
        sink: IO[str] | None,
        settings: Mapping[str, str] | None = None,
        address: str = "127.0.0.1",
        trusted: str | None = None,
    ) -> None:
        self.folder = folder
        self.port = port
        self.address = address
        self._trusted = trusted
        self._sink = sink
        self._settings = {"listen_addresses": address, "fsync": "on", **(settings or {})}
        self._bin = server_binaries()
        self._child: Child | None = None

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder."""
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        """A libpq URL of `database` on this cluster."""
        return f"postgresql://{SYSTEM_USER}@{self.address}:{self.port}/{database}"

    def start(self) -> None:
        """Make the cluster if it is new, run it, and wait until it answers."""
        if not self.data_dir.exists():
            self._initdb()
        argv = [
            str(self._bin / "postgres"),
            *("-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.folder)),
            *(
                option
                for key, value in self._settings.items()
                for option in ("-c", f"{key}={value}")
            ),
        ]
        if self._child is None:
            self._child = Child(
                "postgres", _as_server_user(argv), env=dict(os.environ), sink=self._sink
            )
        else:
            self._child.start()
        wait_until(self.answers, child=self._child, timeout=READY_TIMEOUT)

    def stop(self, mode: str = "fast") -> None:
        """Shut it down as `pg_ctl stop -m mode` would (smart, fast or immediate)."""
        if self._child is not None:
            self._child.stop(SHUTDOWN_SIGNALS[mode])

    def restart(self, mode: str = "fast") -> None:
        """Stop it (`mode` as for `stop`) and start it again."""
        self.stop(mode)
        self.start()

    def connect(self, url: str | None = None) -> psycopg.Connection:
        """An autocommit connection to `url` (by default the `postgres` database)."""
        return psycopg.connect(url or self.url(), autocommit=True, connect_timeout=5)

    def answers(self) -> bool:
        """Whether it accepts a connection now."""
        try:
            self.connect().close()
        except psycopg.OperationalError:
            return False
        return True

    def create_database(self, name: str) -> str:
        """Make an empty database `name`; returns its URL."""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _initdb(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        initdb = [str(self._bin / "initdb"), "-D", str(self.data_dir)]
        options = ["--auth=trust", f"--username={SYSTEM_USER}", "--encoding=UTF8", "--no-sync"]
        subprocess.run(
            _as_server_user([*initdb, *options]), check=True, capture_output=True, timeout=120
        )
        if self._trusted is not None:
            with (self.data_dir / "pg_hba.conf").open("a") as rules:
                rules.write(f"host all all {self._trusted} trust\n")


def free_port() -> int:
    """A loopback port the kernel says is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def started_postgres(
    *, sink: IO[str] | None = None, settings: Mapping[str, str] | None = None
) -> Iterator[Postgres]:
    """A new cluster on a free loopback port, in a temporary folder the
    server's user may write, with `settings` (server parameters) over the
    defaults; stopped and removed after the block."""
    folder = Path(tempfile.mkdtemp(prefix="sfmesh-postgres-", dir="/var/tmp"))
    server = Postgres(folder, free_port(), sink=sink, settings=settings)
    try:
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
