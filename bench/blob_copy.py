"""A 1 GiB blob copied between two node agents' blob stores, against a local
`cp` of the same file, in one run (target: the copy at >= 1/2 of cp's rate).

The holding node agent's `ReadBlob` runs in a process of its own (the
server a node agent serves it from: interceptors, token checks, 1 MiB
chunks), found through its node record in a throwaway etcd; the copying
side is `peer_copy.PeerCopier` as preflight and replication use it: the
stream, sha512 while writing, fsync, rename and the compare-and-swap that
lists the node. `cp` neither hashes nor syncs. Both read a file the page
cache holds (it was just written), and write to the same disk. Two floors
are printed too: the time to sha512 the file alone, and a bare gRPC
stream of as many bytes between the same two processes (1 MiB messages,
nothing read, written or hashed); a checked copy beats neither.

    python -m bench blob_copy
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from sfmesh.v1 import artifact_pb2, node_agent_service_pb2_grpc, node_service_pb2, records_pb2

from devmesh.mesh import Ports, start_etcd
from services.common.interceptors import AuthInterceptor, RequestInterceptor
from services.common.store import Put, Store, key
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport
from services.node_agent.blob_locations import BlobLocations
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.file_digests import file_digest
from services.node_agent.peer_agents import PeerAgents
from services.node_agent.peer_copy import PeerCopier
from services.node_agent.transfers import TransferServicer
from services.node_agent.uploads import UploadFiles

SIZE = 1 << 30
MESSAGE = 1 << 20
FLOOR_METHOD = "/bench.Floor/Stream"
SECRET = "the-blob-copy-benchmark-service-key-0123456789abcdef"


async def serve(state: Path) -> None:
    """The holding node's ReadBlob, printing its port, until killed."""
    blobs = LocalBlobStore(state / "blobs")
    server = grpc.aio.server(
        interceptors=[RequestInterceptor(), AuthInterceptor(TokenAuthority(internal_secret=SECRET))]
    )
    node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server(
        TransferServicer(uploads=UploadFiles(state / "uploads", blobs), blobs=blobs), server
    )

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        message = bytes(MESSAGE)
        for _ in range(SIZE // MESSAGE):
            yield message

    floor = {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Floor", floor)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


def write_blob(blobs: LocalBlobStore, name: str) -> str:
    """A blob of SIZE pseudo-random bytes; its sha512."""
    block = os.urandom(1 << 20)
    digest = hashlib.sha512()
    with blobs.writer(name) as writer:
        for index in range(SIZE >> 20):
            chunk = block[index % 997 :] + block[: index % 997]  # no two chunks alike
            writer.write(chunk)
            digest.update(chunk)
        writer.commit()
    return digest.hexdigest()


async def copy_between_nodes(
    etcd: str, source_port: int, folder: Path, name: str, sha: str
) -> float:
    """Seconds the copying node takes to hold blob `name`."""
    store = Store(etcd)
    authority = TokenAuthority(internal_secret=SECRET)
    node = records_pb2.NodeRecord(name="holder", state=node_service_pb2.NODE_STATE_CREATED)
    node.facts.address = f"127.0.0.1:{source_port}"
    blob = artifact_pb2.Blob(
        uuid=name,
        state=artifact_pb2.BLOB_STATE_CREATED,
        size=SIZE,
        sha512=sha,
        locations=["holder"],
        format="raw",
    )
    copier_node = records_pb2.NodeRecord(name="copier", state=node_service_pb2.NODE_STATE_CREATED)
    await store.commit(
        [
            Put(key("node", "holder"), node.SerializeToString()),
            Put(key("node", "copier"), copier_node.SerializeToString()),
            Put(key("blob", name), records_pb2.BlobRecord(blob=blob).SerializeToString()),
        ]
    )
    peers = PeerAgents(
        store, InternalCredentials(authority, "node_agent").metadata, transport=Transport()
    )
    copier = PeerCopier(
        node="copier",
        blobs=LocalBlobStore(folder / "copier" / "blobs"),
        records=BlobRecords(store),
        locations=BlobLocations(store, "copier"),
        peers=peers,
    )
    try:
        started = time.perf_counter()
        await copier.ensure(name)
        return time.perf_counter() - started
    finally:
        await peers.close()
        await store.close()


async def bare_stream(port: int) -> float:
    """Seconds a bare gRPC stream of SIZE bytes from the holder's process takes."""
    metadata = (
        (
            "authorization",
            f"Bearer {TokenAuthority(internal_secret=SECRET).issue_internal('node_agent')}",
        ),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        started = time.perf_counter()
        received = 0
        async for message in channel.unary_stream(FLOOR_METHOD)(b"", metadata=metadata):
            received += len(message)
        assert received == SIZE
        return time.perf_counter() - started


def main() -> None:
    """Run the benchmark and print its figures."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        folder = Path(tmp)
        ports = Ports.free()
        etcd = start_etcd(folder / "etcd", ports, sink=None)
        holder = folder / "holder"
        name = str(uuid.uuid4())
        sha = write_blob(LocalBlobStore(holder / "blobs"), name)
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.blob_copy", "serve", str(holder)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            address = f"127.0.0.1:{ports.etcd_client}"
            copied = asyncio.run(copy_between_nodes(address, port, folder, name, sha))
            streamed = asyncio.run(bare_stream(port))
            source = LocalBlobStore(holder / "blobs").path(name)
            started = time.perf_counter()
            subprocess.run(["cp", str(source), str(folder / "cp-copy")], check=True)
            plain = time.perf_counter() - started
            started = time.perf_counter()
            file_digest(source)
            hashing = time.perf_counter() - started
        finally:
            server.kill()
            server.wait()
            etcd.stop()
    gib = SIZE / 2**30
    print("blob_copy benchmark (1 GiB blob between two node agents on loopback)")
    print(f"  peer copy (stream, sha512, fsync, listed): {copied:.2f} s, {gib / copied:.2f} GiB/s")
    print(f"  local cp of the same file:                 {plain:.2f} s, {gib / plain:.2f} GiB/s")
    print(f"  sha512 of the same file alone (a floor): {hashing:.2f} s")
    print(f"  a bare gRPC stream of as many bytes (a floor): {streamed:.2f} s")
    print(f"  ratio, peer copy rate / cp rate: {plain / copied:.2f} (target >= 0.5)")
    print(f"  the best ratio the floors allow here: {plain / max(hashing, streamed):.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(serve(Path(sys.argv[2])))
    else:
        main()
