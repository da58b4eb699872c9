"""services/common/etcd_clients.py over TLS: a real etcd serving its client
port with a certificate of the mesh CA and `--client-cert-auth`; the store
reads, writes and watches through it with this process's certificate, and
etcd refuses a client without one or with a stranger's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from aetcd import rpc

from launcher.tls import TlsDir
from services.common import errors
from services.common.store import Put, Store
from services.common.transport import Transport
from tests.meshes import started_etcd
from tests.pki import Pki, make_pki

KEY = b"/sfmesh-test/tls/key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ["etcd", "api"])


@pytest.fixture(scope="module")
def tls_etcd(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-member etcd, as the launcher runs it with `[tls]`, whose client
    port requires a certificate of the mesh CA; yields its client address
    (host:port)."""
    with started_etcd(tmp_path_factory.mktemp("etcd-tls"), TlsDir(pki.folder)) as address:
        yield address


async def test_the_store_reads_writes_and_watches_through_tls(tls_etcd: str, pki: Pki) -> None:
    store = Store(tls_etcd, transport=pki.transport("api"))
    try:
        snapshot = await store.snapshot(KEY)
        assert await store.commit([Put(KEY, b"over tls")])
        item = await store.get(KEY)
        assert item is not None and item.value == b"over tls"
        watch = store.watch_prefix(KEY, start_revision=snapshot.revision + 1)
        change = await asyncio.wait_for(anext(watch), 5)
        assert (change.key, change.value) == (KEY, b"over tls")
        await watch.aclose()
    finally:
        await store.close()


async def test_etcd_refuses_a_client_without_a_certificate(tls_etcd: str, pki: Pki) -> None:
    anonymous = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    async with grpc.aio.secure_channel(tls_etcd, anonymous) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await rpc.KVStub(channel).Range(rpc.RangeRequest(key=KEY), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("client", ["plaintext", "a stranger's certificate", "another CA"])
async def test_the_store_cannot_reach_etcd_without_the_mesh_ca(
    tls_etcd: str, pki: Pki, tmp_path: Path, client: str
) -> None:
    transports = {
        "plaintext": Transport,
        # trusts etcd, but presents a certificate etcd does not trust
        "a stranger's certificate": lambda: pki.presenting(make_pki(tmp_path, ["api"]), "api"),
        # does not trust etcd's certificate
        "another CA": lambda: make_pki(tmp_path, ["api"]).transport("api"),
    }
    store = Store(tls_etcd, timeout=1, transport=transports[client]())
    try:
        with pytest.raises(errors.Unavailable):
            await store.get(KEY)
    finally:
        await store.close()
