"""The api's TransferService over real gRPC, on a real etcd, against two small
fake node agents (in-memory upload and blob files, serving the internal
contract of protos/sfmesh/v1/node_agent_service.proto): the relay of appends
(a refusal answered only after the whole stream, a record/file mismatch
reconciled), truncates, conversions (an empty upload refused with nothing
written, a duplicate content reusing its blob) and blob reads (offset,
limit, Range, 416, a holder failing mid-read handing over to the next).

The real node agent's side is tested on its own branch; the whole runs in
tests/e2e/test_transfers.py.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2_grpc
from grpc_status import rpc_status
from sfmesh.v1 import (
    artifact_pb2,
    node_agent_service_pb2,
    node_agent_service_pb2_grpc,
    node_service_pb2,
    records_pb2,
    transfer_service_pb2,
    transfer_service_pb2_grpc,
)

from services.api.artifacts.finding import Finder
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.namespaces.store import NamespaceStore
from services.api.transfers.blob_data import BlobData
from services.api.transfers.conversion import Conversion
from services.api.transfers.servicer import TransferServicer
from services.api.transfers.store import UploadStore
from services.api.transfers.uploads import Uploads
from services.common.config import MeshConfig
from services.common.instance_store import InstanceStore
from services.common.interceptors import AuthInterceptor, RequestInterceptor
from services.common.main import service_authority, service_emitter
from services.common.secrets import load_or_create_secret
from services.common.store import Delete, Put, Store, key, kind_prefix
from services.common.tokens import InternalCredentials
from services.common.transport import Transport

RUN = uuid.uuid4().hex[:8]
NODES = (f"t{RUN}-node-a", f"t{RUN}-node-b")
OWNER, STRANGER = f"t{RUN}-owner", f"t{RUN}-stranger"
CHUNK = 256 * 1024
Metadata = tuple[tuple[str, str], ...]


@dataclass
class FakeNode(node_agent_service_pb2_grpc.NodeAgentServiceServicer):
    """A node agent's upload and blob files, in memory."""

    uploads: dict[str, bytearray] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    fail_reads_after: int | None = None
    """Bytes a read sends before it fails (None: never)."""

    async def AppendToUpload(
        self,
        request_iterator: AsyncIterator[node_agent_service_pb2.AppendToUploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.UploadFileSize:
        received, first = bytearray(), None
        async for message in request_iterator:
            first = first or message
            received += message.data
        assert first is not None
        current = self.uploads.setdefault(first.upload_uuid, bytearray())
        if len(current) != first.expected_size:
            await _abort_with_size(context, len(current))
        if len(current) + len(received) > first.max_size:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "too big")
        current += received
        return node_agent_service_pb2.UploadFileSize(size=len(current))

    async def TruncateUploadFile(
        self,
        request: node_agent_service_pb2.TruncateUploadFileRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.UploadFileSize:
        current = self.uploads.setdefault(request.upload_uuid, bytearray())
        if request.size > len(current):
            await _abort_with_size(context, len(current))
        del current[request.size :]
        return node_agent_service_pb2.UploadFileSize(size=len(current))

    async def SealUpload(
        self, request: node_agent_service_pb2.SealUploadRequest, context: grpc.aio.ServicerContext
    ) -> node_agent_service_pb2.SealUploadResponse:
        content = bytes(self.uploads.pop(request.upload_uuid, b""))
        if not content:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "empty upload")
        self.blobs[request.blob_uuid] = content
        return node_agent_service_pb2.SealUploadResponse(
            size=len(content), sha512=hashlib.sha512(content).hexdigest(), format="raw"
        )

    async def DiscardUpload(
        self,
        request: node_agent_service_pb2.DiscardUploadRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.DiscardUploadResponse:
        self.uploads.pop(request.upload_uuid, None)
        return node_agent_service_pb2.DiscardUploadResponse()

    async def ReadBlob(
        self, request: node_agent_service_pb2.ReadBlobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[node_agent_service_pb2.ReadBlobResponse]:
        content = self.blobs.get(request.blob_uuid)
        if content is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such blob here")
            return
        end = len(content) if not request.limit else request.offset + request.limit
        sent = 0
        for start in range(request.offset, min(end, len(content)), 1000):
            if self.fail_reads_after is not None and sent >= self.fail_reads_after:
                await context.abort(grpc.StatusCode.INTERNAL, "disk went away")
            piece = content[start : min(start + 1000, end)]
            sent += len(piece)
            yield node_agent_service_pb2.ReadBlobResponse(data=piece)


async def _abort_with_size(context: grpc.aio.ServicerContext, size: int) -> None:
    """FAILED_PRECONDITION with the file's real size in ErrorInfo metadata `size`."""
    info = error_details_pb2.ErrorInfo(
        reason="UPLOAD_SIZE_MISMATCH",
        domain="sfmesh",
        metadata={"http_status": "409", "size": str(size)},
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    status = status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION, message=f"the file has {size} bytes", details=[packed]
    )
    await context.abort_with_status(rpc_status.to_status(status))


class Ordered(random.Random):
    """Picks and orders nodes as NODES lists them, whatever else etcd holds."""

    def choice(self, seq: Sequence[str]) -> str:  # type: ignore[override]
        return next(node for node in NODES if node in seq)

    def shuffle(self, x: list[str]) -> None:  # type: ignore[override]
        x.sort(key=lambda node: NODES.index(node) if node in NODES else len(NODES))


@dataclass
class Mesh:
    """The api's TransferService, its fake nodes and who may call."""

    stub: transfer_service_pb2_grpc.TransferServiceStub
    store: Store
    nodes: dict[str, FakeNode]
    owner: Metadata
    stranger: Metadata
    system: Metadata


@pytest.fixture(scope="module")
async def mesh(etcd: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    state_dir: Path = tmp_path_factory.mktemp("transfers")
    store = Store(etcd)
    authority = service_authority(
        state_dir, Transport(), user_secret=load_or_create_secret(state_dir / "jwt.secret")
    )
    credentials = InternalCredentials(authority, "api-test")
    fakes: dict[str, FakeNode] = {}
    servers: list[grpc.aio.Server] = []
    for name in NODES:
        fake = FakeNode()
        server = grpc.aio.server()
        node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server(fake, server)
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        fakes[name], servers = fake, [*servers, server]
        node = records_pb2.NodeRecord(name=name, state=node_service_pb2.NODE_STATE_CREATED)
        node.facts.address = f"127.0.0.1:{port}"
        assert await store.commit([Put(key("node", name), node.SerializeToString())])
    for namespace in (OWNER, STRANGER):
        record = records_pb2.NamespaceRecord(name=namespace, state="created")
        assert await store.commit([Put(key("namespace", namespace), record.SerializeToString())])

    emitter = service_emitter(
        MeshConfig(state_dir, etcd=(etcd,), api="", scheduler="", eventlog="127.0.0.1:1"),
        "api-test",
        authority,
    )
    await emitter.start()
    events = Events(emitter, "127.0.0.1:1", credentials, transport=Transport())
    agents = NodeAgents(store, credentials, transport=Transport())
    artifacts, namespaces = ArtifactStore(store), NamespaceStore(store)
    lookup = ArtifactLookup(artifacts, namespaces, InstanceStore(store))
    uploads_store = UploadStore(store)
    uploads = Uploads(uploads_store, artifacts, agents, events, max_size=10 * CHUNK, rng=Ordered())
    conversion = Conversion(
        uploads_store,
        uploads,
        artifacts,
        namespaces,
        lookup,
        Finder(artifacts, lookup),
        agents,
        events,
    )
    api = grpc.aio.server(interceptors=[RequestInterceptor(), AuthInterceptor(authority)])
    transfer_service_pb2_grpc.add_TransferServiceServicer_to_server(
        TransferServicer(uploads, conversion, BlobData(artifacts, lookup, agents, Ordered())), api
    )
    port = api.add_insecure_port("127.0.0.1:0")
    await api.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    def bearer(namespace: str) -> Metadata:
        return (("authorization", f"Bearer {authority.issue_user(namespace, 'k', 'n')}"),)

    yield Mesh(
        transfer_service_pb2_grpc.TransferServiceStub(channel),
        store,
        fakes,
        bearer(OWNER),
        bearer(STRANGER),
        bearer("system"),
    )
    await channel.close()
    await api.stop(0)
    for server in servers:
        await server.stop(0)
    await agents.close()
    await events.close()
    await emitter.close(timeout=0)
    await _clean(store)
    await store.close()


async def _clean(store: Store) -> None:
    """Remove what these tests wrote to the shared etcd."""
    doomed: list[Delete] = [Delete(key("node", n)) for n in NODES]
    doomed += [Delete(key("namespace", n)) for n in (OWNER, STRANGER)]
    mine: set[bytes] = set()
    async for item in store.list_prefix(kind_prefix("upload")):
        if records_pb2.UploadRecord.FromString(item.value).upload.node in NODES:
            doomed.append(Delete(item.key))
    async for item in store.list_prefix(kind_prefix("artifact")):
        artifact = records_pb2.ArtifactRecord.FromString(item.value).artifact
        if artifact.namespace == OWNER:
            doomed.append(Delete(item.key))
            mine.add(artifact.uuid.encode())
    async for item in store.list_prefix(kind_prefix("artifact_source")):
        if item.value in mine:
            doomed.append(Delete(item.key))
    async for item in store.list_prefix(kind_prefix("blob")):
        locations = records_pb2.BlobRecord.FromString(item.value).blob.locations
        if set(locations) & set(NODES):
            doomed.append(Delete(item.key))
    assert await store.commit(doomed)


def _messages(upload_uuid: str, data: bytes) -> Iterable[transfer_service_pb2.AppendUploadRequest]:
    """An append as the gateway sends it: the upload in the first message."""
    pieces = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    for index, piece in enumerate(pieces):
        message = transfer_service_pb2.AppendUploadRequest()
        if index == 0:
            message.upload_uuid = upload_uuid
        message.data.data = piece
        yield message


async def _append(mesh: Mesh, upload_uuid: str, data: bytes, who: Metadata | None = None) -> int:
    reply = await mesh.stub.AppendUpload(
        _messages(upload_uuid, data), metadata=who or mesh.owner, timeout=30
    )
    return int(reply.size)


async def _record(mesh: Mesh, upload_uuid: str) -> records_pb2.UploadRecord | None:
    item = await mesh.store.get(key("upload", upload_uuid))
    return None if item is None else records_pb2.UploadRecord.FromString(item.value)


def _http_status(exc: grpc.aio.AioRpcError) -> str:
    status = status_pb2.Status()
    for name, value in exc.trailing_metadata() or ():
        if name == "grpc-status-details-bin":
            status.ParseFromString(value)
    for packed in status.details:
        info = error_details_pb2.ErrorInfo()
        if packed.Unpack(info):
            return info.metadata["http_status"]
    return ""


async def _refused(call: object) -> tuple[str, str]:
    """The HTTP status and message a call was refused with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return _http_status(caught.value), caught.value.details() or ""


async def test_appends_relay_to_the_node_and_the_record_follows(mesh: Mesh) -> None:
    upload = await mesh.stub.CreateUpload(
        transfer_service_pb2.CreateUploadRequest(), metadata=mesh.owner
    )
    assert (upload.state, upload.node, upload.size, upload.version) == ("created", NODES[0], 0, 3)
    data = bytes(range(256)) * 4096  # 1 MiB: four messages
    assert await _append(mesh, upload.uuid, data) == len(data)
    assert await _append(mesh, upload.uuid, b"tail") == len(data) + 4
    assert bytes(mesh.nodes[NODES[0]].uploads[upload.uuid]) == data + b"tail"
    record = await _record(mesh, upload.uuid)
    assert record is not None and record.upload.size == len(data) + 4
    assert record.namespace == OWNER


async def test_another_namespaces_upload_is_not_found_after_the_whole_stream(mesh: Mesh) -> None:
    upload = await mesh.stub.CreateUpload(
        transfer_service_pb2.CreateUploadRequest(), metadata=mesh.owner
    )
    many = b"x" * (3 * CHUNK + 10)
    for who in (mesh.stranger, None):
        metadata = who or mesh.owner
        target = upload.uuid if who else str(uuid.uuid4())
        call = mesh.stub.AppendUpload(_messages(target, many), metadata=metadata, timeout=30)
        assert await _refused(call) == ("404", "upload not found")
    truncate = transfer_service_pb2.TruncateUploadRequest(upload_uuid=upload.uuid, offset=0)
    assert await _refused(mesh.stub.TruncateUpload(truncate, metadata=mesh.stranger)) == (
        "404",
        "upload not found",
    )
    convert = transfer_service_pb2.ConvertUploadRequest(
        artifact_name=f"t{RUN}-theirs", upload_uuid=upload.uuid
    )
    assert await _refused(mesh.stub.ConvertUpload(convert, metadata=mesh.stranger)) == (
        "404",
        "upload not found",
    )
    # system may
    assert await _append(mesh, upload.uuid, b"abc", mesh.system) == 3


async def test_truncates_stay_within_the_upload(mesh: Mesh) -> None:
    upload = await mesh.stub.CreateUpload(
        transfer_service_pb2.CreateUploadRequest(), metadata=mesh.owner
    )
    await _append(mesh, upload.uuid, b"0123456789")
    too_far = transfer_service_pb2.TruncateUploadRequest(upload_uuid=upload.uuid, offset=11)
    status, _ = await _refused(mesh.stub.TruncateUpload(too_far, metadata=mesh.owner))
    assert status == "400"
    cut = transfer_service_pb2.TruncateUploadRequest(upload_uuid=upload.uuid, offset=4)
    await mesh.stub.TruncateUpload(cut, metadata=mesh.owner)
    assert bytes(mesh.nodes[NODES[0]].uploads[upload.uuid]) == b"0123"
    record = await _record(mesh, upload.uuid)
    assert record is not None and record.upload.size == 4


async def test_a_record_and_file_apart_take_the_files_size(mesh: Mesh) -> None:
    """As after a crash between the node's append and the record's write."""
    upload = await mesh.stub.CreateUpload(
        transfer_service_pb2.CreateUploadRequest(), metadata=mesh.owner
    )
    await _append(mesh, upload.uuid, b"confirmed")
    mesh.nodes[NODES[0]].uploads[upload.uuid] += b"-unconfirmed"
    status, message = await _refused(
        mesh.stub.AppendUpload(_messages(upload.uuid, b"next" * CHUNK), metadata=mesh.owner)
    )
    assert status == "409" and "holds 21 bytes" in message
    record = await _record(mesh, upload.uuid)
    assert record is not None and record.upload.size == len(b"confirmed-unconfirmed")
    # what the official client does next: truncate to what it confirmed, send again
    cut = transfer_service_pb2.TruncateUploadRequest(upload_uuid=upload.uuid, offset=9)
    await mesh.stub.TruncateUpload(cut, metadata=mesh.owner)
    assert await _append(mesh, upload.uuid, b"next") == 13


async def test_an_upload_past_its_limit_is_refused(mesh: Mesh) -> None:
    upload = await mesh.stub.CreateUpload(
        transfer_service_pb2.CreateUploadRequest(), metadata=mesh.owner
    )
    call = mesh.stub.AppendUpload(_messages(upload.uuid, b"y" * (11 * CHUNK)), metadata=mesh.owner)
    status, _ = await _refused(call)
    assert status.startswith("4") or status == "503"
    record = await _record(mesh, upload.uuid)
    assert record is not None and record.upload.size == 0


async def test_an_empty_upload_converts_to_nothing(mesh: Mesh) -> None:
    upload = await mesh.stub.CreateUpload(
        transfer_service_pb2.CreateUploadRequest(), metadata=mesh.owner
    )
    name = f"t{RUN}-empty"
    convert = transfer_service_pb2.ConvertUploadRequest(artifact_name=name, upload_uuid=upload.uuid)
    assert (await _refused(mesh.stub.ConvertUpload(convert, metadata=mesh.owner)))[0] == "409"
    assert await _record(mesh, upload.uuid) is not None
    async for stored in ArtifactStore(mesh.store).all():
        assert stored.record.artifact.name != name


async def _converted(mesh: Mesh, name: str, data: bytes) -> artifact_pb2.Artifact:
    upload = await mesh.stub.CreateUpload(
        transfer_service_pb2.CreateUploadRequest(), metadata=mesh.owner
    )
    await _append(mesh, upload.uuid, data)
    convert = transfer_service_pb2.ConvertUploadRequest(artifact_name=name, upload_uuid=upload.uuid)
    artifact = await mesh.stub.ConvertUpload(convert, metadata=mesh.owner)
    assert await _record(mesh, upload.uuid) is None
    return artifact


async def test_a_conversion_makes_a_version_and_the_same_content_reuses_its_blob(
    mesh: Mesh,
) -> None:
    data = f"content of {RUN}".encode() * 100
    first = await _converted(mesh, f"t{RUN}-disk", data)
    assert (first.state, first.index, first.source_url) == (
        artifact_pb2.ARTIFACT_STATE_CREATED,
        1,
        f"sf://upload/{OWNER}/t{RUN}-disk",
    )
    assert first.namespace == OWNER
    artifacts = ArtifactStore(mesh.store)
    blob = await artifacts.get_blob(first.blob_uuid)
    assert blob is not None
    assert blob.record.blob.sha512 == hashlib.sha512(data).hexdigest()
    assert (blob.record.blob.reference_count, list(blob.record.blob.locations)) == (1, [NODES[0]])

    other = await _converted(mesh, f"t{RUN}-copy", data)  # another artifact, same content
    assert other.blob_uuid == first.blob_uuid
    again = await artifacts.get_blob(first.blob_uuid)
    assert again is not None and again.record.blob.reference_count == 2
    created = [
        s.record.blob.uuid
        async for s in artifacts.all_blobs()
        if s.record.blob.sha512 == blob.record.blob.sha512
        and s.record.blob.state == artifact_pb2.BLOB_STATE_CREATED
    ]
    assert created == [first.blob_uuid]

    same = await _converted(mesh, f"t{RUN}-disk", data)  # same artifact: no new version
    assert (same.uuid, same.index) == (first.uuid, 1)


async def test_a_blob_converts_once_reached(mesh: Mesh) -> None:
    made = await _converted(mesh, f"t{RUN}-source", f"blob of {RUN}".encode())
    convert = transfer_service_pb2.ConvertUploadRequest(
        artifact_name=f"t{RUN}-by-blob", blob_uuid=made.blob_uuid
    )
    assert await _refused(mesh.stub.ConvertUpload(convert, metadata=mesh.stranger)) == (
        "404",
        "blob not found",
    )
    artifact = await mesh.stub.ConvertUpload(convert, metadata=mesh.owner)
    assert artifact.blob_uuid == made.blob_uuid


async def _read(
    mesh: Mesh, request: transfer_service_pb2.GetBlobDataRequest
) -> tuple[bytes, dict[str, str]]:
    call = mesh.stub.GetBlobData(request, metadata=mesh.system, timeout=30)
    body = b"".join([chunk.data async for chunk in call])
    head = {k: v for k, v in (await call.initial_metadata()) or () if isinstance(v, str)}
    return body, head


async def test_blob_data_by_offset_limit_and_range(mesh: Mesh) -> None:
    data = bytes(random.Random(RUN).randbytes(5000))
    made = await _converted(mesh, f"t{RUN}-read", data)
    Request = transfer_service_pb2.GetBlobDataRequest
    whole, head = await _read(mesh, Request(uuid=made.blob_uuid))
    assert whole == data and "x-http-code" not in head
    assert (await _read(mesh, Request(uuid=made.blob_uuid, offset=100, limit=2500)))[0] == data[
        100:2600
    ]
    assert (await _read(mesh, Request(uuid=made.blob_uuid, offset=6000)))[0] == b""
    part, head = await _read(mesh, Request(uuid=made.blob_uuid, range="bytes=4000-"))
    assert part == data[4000:]
    assert (head["x-http-code"], head["content-range"]) == ("206", "bytes 4000-4999/5000")
    call = mesh.stub.GetBlobData(
        Request(uuid=made.blob_uuid, range="bytes=5000-"), metadata=mesh.system
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert _http_status(caught.value) == "416"
    call = mesh.stub.GetBlobData(Request(uuid=made.blob_uuid), metadata=mesh.stranger)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert (_http_status(caught.value), caught.value.details()) == ("404", "blob not found")


async def test_a_holder_failing_mid_read_hands_over_to_the_next(mesh: Mesh) -> None:
    data = bytes(random.Random(RUN + "x").randbytes(7000))
    made = await _converted(mesh, f"t{RUN}-replicated", data)
    mesh.nodes[NODES[1]].blobs[made.blob_uuid] = data
    artifacts = ArtifactStore(mesh.store)
    stored = await artifacts.get_blob(made.blob_uuid)
    assert stored is not None
    await artifacts.update_blob(stored, lambda r: r.blob.locations.append(NODES[1]))
    mesh.nodes[NODES[0]].fail_reads_after = 3000
    try:
        body, _ = await _read(mesh, transfer_service_pb2.GetBlobDataRequest(uuid=made.blob_uuid))
    finally:
        mesh.nodes[NODES[0]].fail_reads_after = None
    assert body == data
