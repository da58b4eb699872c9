"""etcd as the launcher runs it with `[tls]`: a client presenting a
certificate of the mesh CA reads and writes; one without a certificate, with
one of another CA, or in plaintext gets no answer. One member, and a cluster
of three whose members reach each other over TLS too."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from devmesh.certificates import issue
from devmesh.mesh import ETCD_MEMBER
from launcher.tls import transport
from tests.meshes import started_etcd, started_etcd_cluster


def put(channel: grpc.Channel, key: bytes, value: bytes) -> None:
    rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=5)


def get(channel: grpc.Channel, key: bytes) -> bytes:
    reply = rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=key), timeout=5)
    return bytes(reply.kvs[0].value) if reply.kvs else b""


def refused(channel: grpc.Channel) -> None:
    """Nothing answers on `channel`: the handshake (or the plaintext) fails."""
    with channel, pytest.raises(grpc.RpcError) as raised:
        put(channel, b"intruder", b"x")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def check_only_the_mesh_gets_in(address: str, ca: Path, folder: Path) -> None:
    """Mesh clients read and write at `address`; others are refused."""
    client = transport(issue(ca, folder / "client", "client", ["api"]), "api")
    with client.blocking_channel(address) as channel:
        put(channel, b"greeting", b"hello")
        assert get(channel, b"greeting") == b"hello"
    ca_only = grpc.ssl_channel_credentials(root_certificates=(ca / "ca.crt").read_bytes())
    refused(grpc.secure_channel(address, ca_only))
    stranger = transport(issue(folder / "other-ca", folder / "stranger", "client", ["api"]), "api")
    refused(stranger.blocking_channel(address))
    refused(grpc.insecure_channel(address))


def test_one_member_answers_only_clients_of_the_mesh(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    tls = issue(ca, tmp_path / "tls", ETCD_MEMBER, ["etcd"])
    with started_etcd(tmp_path / "etcd", tls) as address:
        check_only_the_mesh_gets_in(address, ca, tmp_path)


def test_a_cluster_of_three_speaks_tls_between_members(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    with started_etcd_cluster(tmp_path / "cluster", 3, ca) as members:
        check_only_the_mesh_gets_in(members[0].client, ca, tmp_path)
        client = transport(issue(ca, tmp_path / "reader", "reader", ["api"]), "api")
        with client.blocking_channel(members[2].client) as channel:
            assert get(channel, b"greeting") == b"hello"
