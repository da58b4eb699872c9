"""Fixtures shared by every test layer: a real etcd and a real PostgreSQL on
free ports, and a HOME folder of its own so nothing touches the user's
~/.shakenfist."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.postgres import Postgres, started_postgres
from guests.bootsector import boot_sector
from guests.serve import ImageServer
from tests.meshes import started_etcd


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point HOME at a temporary folder before any test writes there."""
    home = tmp_path_factory.mktemp("home")
    previous = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    yield home
    if previous is not None:
        os.environ["HOME"] = previous


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real etcd server on free loopback ports; yields its client address."""
    with started_etcd(tmp_path_factory.mktemp("etcd")) as address:
        yield address


@pytest.fixture
def qemu_tmp() -> Iterator[Path]:
    """An empty folder qemu (running as libvirt-qemu) can traverse, read and
    write: pytest's own tmp folders are private to root."""
    folder = Path(tempfile.mkdtemp(prefix="sfmesh-test-", dir="/var/tmp"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageServer]:
    """A loopback HTTP server of published files: ``publish(name, data) ->
    url``, ``url(name)``, ``hits(name)``."""
    server = ImageServer(tmp_path_factory.mktemp("image-server"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def boot_sector_url(image_server: ImageServer) -> str:
    """The URL of guests/bootsector.py's boot sector (a raw disk image that
    prints its marker to COM1), published on ``image_server``."""
    return image_server.publish("bootsector.raw", boot_sector())


@pytest.fixture(scope="session")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox binary: the one on PATH, else Debian's busybox-static unpacked."""
    found = shutil.which("busybox")
    if found:
        return found
    folder = tmp_path_factory.mktemp("busybox")
    try:
        subprocess.run(
            ["apt-get", "download", "-qq", "busybox-static"],
            cwd=folder, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        (deb,) = folder.glob("busybox-static_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(folder)], check=True, timeout=60)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        pytest.skip(f"no busybox: {error}")
    return str(folder / "bin" / "busybox")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster on a free loopback port; tests make a
    database each (`create_database`) and may restart it."""
    with started_postgres(sink=sys.stderr) as server:
        yield server
