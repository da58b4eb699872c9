"""Throwaway meshes for the layers that start one of their own (end to end,
reliability): every service on free ports, a state folder qemu can
traverse, and whatever the node agent leaves behind removed at the end.

The `token` and `rest` fixtures are declared here once; a layer's conftest
binds them (`token = meshes.token`) beside its own `mesh` fixture, which they ask for."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devmesh.mesh import (
    EtcdMemberRun,
    Mesh,
    Ports,
    remove_leftovers,
    start_etcd,
    start_etcd_cluster,
)
from launcher.tls import TlsDir
from services.api.token_secret import SECRET_KEY
from services.common.store import Store

SUITE_TOKEN_TTL = str(4 * 3600)
"""A layer outlives the default 900 s of a user token, and its `token` is
taken once per session: the throwaway meshes let tokens last the run."""


@contextlib.contextmanager
def started_etcd(folder: Path, tls: TlsDir | None = None) -> Iterator[str]:
    """A real etcd on free loopback ports with its data in `folder` (over
    TLS with `tls`, see `start_etcd`); yields its client address and stops
    it after the block."""
    ports = Ports.free()
    child = start_etcd(folder, ports, sink=sys.stderr, tls=tls)
    try:
        yield f"127.0.0.1:{ports.etcd_client}"
    finally:
        child.stop()


@contextlib.contextmanager
def started_etcd_cluster(
    folder: Path, size: int = 3, ca: Path | None = None
) -> Iterator[list[EtcdMemberRun]]:
    """A new etcd cluster of `size` real members on free loopback ports,
    their data under `folder` (over TLS with certificates of the CA in `ca`,
    see `start_etcd_cluster`); yields the members (stop one with
    `member.child.stop(signal.SIGKILL)`) and stops those left after the block."""
    members = start_etcd_cluster(folder, size, sink=sys.stderr, ca=ca)
    try:
        yield members
    finally:
        for member in members:
            if member.child.alive():
                member.child.stop()


@contextlib.contextmanager
def throwaway_mesh(
    layer: str, node: str, settings: dict[str, str], *, tls: bool = False
) -> Iterator[Mesh]:
    """etcd and every service, as `make run` starts them, on free ports; the
    node agent named `node` (its domains are `sfmesh-<node>-<uuid>`),
    `settings` over the defaults, the state folder `/var/tmp/sfmesh-<layer>-*`;
    with `tls`, as `make run RUN_ARGS=--tls` starts them."""
    state_dir = Path(tempfile.mkdtemp(prefix=f"sfmesh-{layer}-", dir="/var/tmp"))
    state_dir.chmod(0o755)
    running = Mesh(
        state_dir=state_dir,
        ports=Ports.free(),
        sink=sys.stderr,
        node_name=node,
        settings={"SFMESH_TOKEN_TTL": SUITE_TOKEN_TTL, **settings},
        tls=tls,
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        remove_leftovers(node)
        shutil.rmtree(state_dir, ignore_errors=True)


def login(mesh: Mesh, namespace: str, key: str) -> str:
    """A token of `namespace` from POST /auth with `key`."""
    reply = httpx.post(f"{mesh.gateway_url}/auth", json={"namespace": namespace, "key": key})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def user_token_secret(mesh: Mesh) -> str:
    """The secret the mesh's api replicas sign user tokens with, as etcd
    holds it (services/api/token_secret.py), for tests that forge tokens."""

    async def read() -> str:
        store = Store((mesh.address("etcd_client"),))
        try:
            stored = await store.get(SECRET_KEY)
        finally:
            await store.close()
        assert stored is not None, "the api has not published its token secret"
        return stored.value.decode()

    return asyncio.run(read())


def system_token(mesh: Mesh) -> str:
    """A system token from POST /auth."""
    return login(mesh, "system", mesh.system_key)


@contextlib.contextmanager
def tenant(mesh: Mesh, token: str, namespace: str) -> Iterator[httpx.Client]:
    """A new namespace, made by system (`token`), as a REST client of its own."""
    with rest_client(mesh, token) as admin:
        body = {"namespace": namespace, "key_name": "k", "key": "s"}
        made = admin.post("/auth/namespaces", json=body)
        assert made.status_code == 200, made.text
    with rest_client(mesh, login(mesh, namespace, "s")) as client:
        yield client


def rest_client(mesh: Mesh, token: str, timeout: float = 30) -> httpx.Client:
    """An HTTP client for the mesh's gateway carrying `token`."""
    return httpx.Client(
        base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
    )


@pytest.fixture(scope="session")
def token(mesh: Mesh) -> str:
    """A system token from POST /auth, for the layer's `mesh`."""
    return system_token(mesh)


@pytest.fixture
def rest(mesh: Mesh, token: str) -> Iterator[httpx.Client]:
    """An HTTP client for the layer's gateway carrying the system token."""
    with rest_client(mesh, token) as client:
        yield client
