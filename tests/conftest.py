"""Fixtures shared by every test layer: a real etcd on free ports, and a HOME
folder of its own so nothing touches the user's ~/.shakenfist."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.mesh import Ports, start_etcd


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
    ports = Ports.free()
    child = start_etcd(
        tmp_path_factory.mktemp("etcd"), ports, env=dict(os.environ), sink=sys.stderr
    )
    yield f"127.0.0.1:{ports.etcd_client}"
    child.stop()
