"""NodeAgentService's uploads and blob reads (services/node_agent/transfers.py)
over a real grpc.aio server on loopback, with the interceptors every service
installs, on real upload and blob folders: appends all or nothing, checked
against the caller's size and bounded; truncates; seals into checksummed
blobs, idempotent; discards; ReadBlob ranges; bad names and user tokens
refused."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from sfmesh.v1 import node_agent_service_pb2 as pb
from sfmesh.v1 import node_agent_service_pb2_grpc

from services.common.interceptors import AuthInterceptor, RequestInterceptor
from services.common.main import service_authority
from services.common.secrets import load_or_create_secret
from services.common.tokens import TokenAuthority
from services.common.transport import Transport
from services.node_agent import uploads as uploads_module
from services.node_agent.blob_reads import CHUNK
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.transfers import TransferServicer
from services.node_agent.uploads import UploadFiles

MAX = 10 * 2**20


@dataclass
class Node:
    stub: node_agent_service_pb2_grpc.NodeAgentServiceStub
    metadata: tuple[tuple[str, str], ...]
    uploads: Path
    blobs: LocalBlobStore
    user_metadata: tuple[tuple[str, str], ...]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    authority = service_authority(tmp_path / "state", Transport())
    blobs = LocalBlobStore(tmp_path / "state" / "blobs")
    uploads = UploadFiles(tmp_path / "state" / "uploads", blobs)
    server = grpc.aio.server(interceptors=[RequestInterceptor(), AuthInterceptor(authority)])
    node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server(
        TransferServicer(uploads=uploads, blobs=blobs), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    # The api holds the same service.key, and the JWT secret of user tokens.
    api = TokenAuthority(
        internal_secret=load_or_create_secret(tmp_path / "state" / "service.key"),
        user_secret="a-user-secret-for-the-transfer-tests-0123456789",
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Node(
        node_agent_service_pb2_grpc.NodeAgentServiceStub(channel),
        (("authorization", f"Bearer {api.issue_internal('api')}"),),
        uploads.root,
        blobs,
        (("authorization", f"Bearer {api.issue_user('system', 'admin', 'n')}"),),
    )
    await channel.close()
    await server.stop(0)


def new_uuid() -> str:
    return str(uuid.uuid4())


async def messages(
    upload: str, expected: int, chunks: Iterable[bytes], max_size: int = MAX
) -> AsyncIterator[pb.AppendToUploadRequest]:
    first = True
    for chunk in chunks:
        if first:
            yield pb.AppendToUploadRequest(
                upload_uuid=upload, expected_size=expected, max_size=max_size, data=chunk
            )
            first = False
        else:
            yield pb.AppendToUploadRequest(data=chunk)
    if first:
        yield pb.AppendToUploadRequest(
            upload_uuid=upload, expected_size=expected, max_size=max_size
        )


async def append(
    node: Node, upload: str, expected: int, chunks: Iterable[bytes], max_size: int = MAX
) -> int:
    reply = await node.stub.AppendToUpload(
        messages(upload, expected, chunks, max_size), metadata=node.metadata
    )
    return int(reply.size)


def reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason a refusal carries."""
    status = status_pb2.Status()
    for name, value in error.trailing_metadata() or ():
        if name == "grpc-status-details-bin" and isinstance(value, bytes):
            status.ParseFromString(value)
    info = error_details_pb2.ErrorInfo()
    assert status.details and status.details[0].Unpack(info)
    return info.reason


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


async def test_appends_in_chunks_then_seal_make_a_checksummed_blob(node: Node) -> None:
    upload, blob = new_uuid(), new_uuid()
    data = os.urandom(3 * 2**20 + 17)
    pieces = [data[i : i + 256 * 1024] for i in range(0, 2**20, 256 * 1024)]
    assert await append(node, upload, 0, pieces) == 2**20
    assert await append(node, upload, 2**20, [data[2**20 :]]) == len(data)
    assert (node.uploads / upload).read_bytes() == data
    assert oct((node.uploads / upload).stat().st_mode & 0o777) == "0o644"

    sealed = await node.stub.SealUpload(
        pb.SealUploadRequest(upload_uuid=upload, blob_uuid=blob), metadata=node.metadata
    )
    assert (sealed.size, sealed.format) == (len(data), "raw")
    assert sealed.sha512 == hashlib.sha512(data).hexdigest()
    assert node.blobs.path(blob).read_bytes() == data
    assert oct(node.blobs.path(blob).stat().st_mode & 0o777) == "0o644"
    assert not (node.uploads / upload).exists()
    assert list(node.blobs.root.glob("*/*.partial")) == []

    again = await node.stub.SealUpload(  # the answer was lost: the same answer
        pb.SealUploadRequest(upload_uuid=upload, blob_uuid=blob), metadata=node.metadata
    )
    assert again == sealed


async def test_a_seal_interrupted_before_the_upload_went_answers_the_same(node: Node) -> None:
    upload, blob = new_uuid(), new_uuid()
    data = b"interrupted" * 1000
    await append(node, upload, 0, [data])
    path = node.blobs.path(blob)  # as a crash between the rename and the unlink leaves it
    path.parent.mkdir(parents=True, exist_ok=True)
    os.link(node.uploads / upload, path)
    sealed = await node.stub.SealUpload(
        pb.SealUploadRequest(upload_uuid=upload, blob_uuid=blob), metadata=node.metadata
    )
    assert sealed.sha512 == hashlib.sha512(data).hexdigest()
    assert sealed.size == len(data)
    assert not (node.uploads / upload).exists()
    assert path.read_bytes() == data


async def test_a_seal_into_a_blob_of_other_content_is_refused(node: Node) -> None:
    upload, blob = new_uuid(), new_uuid()
    await append(node, upload, 0, [b"mine"])
    with node.blobs.writer(blob) as out:
        out.write(b"theirs")
        out.commit()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await node.stub.SealUpload(
            pb.SealUploadRequest(upload_uuid=upload, blob_uuid=blob), metadata=node.metadata
        )
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason(raised.value) == "BLOB_EXISTS"
    assert (node.uploads / upload).read_bytes() == b"mine"
    assert node.blobs.path(blob).read_bytes() == b"theirs"


async def test_an_append_expecting_another_size_is_refused_with_the_real_one(
    node: Node,
) -> None:
    upload = new_uuid()
    await append(node, upload, 0, [b"12345"])
    many = [b"x" * 1024] * 64  # refused only once the whole stream is read
    for expected in (0, 4, 6):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await append(node, upload, expected, many)
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert raised.value.details() == f"upload {upload} has 5 bytes, not {expected}"
        assert reason(raised.value) == "UPLOAD_SIZE_MISMATCH"
    assert (node.uploads / upload).read_bytes() == b"12345"

    call = node.stub.AppendToUpload(metadata=node.metadata)  # refused once the stream ended
    await call.write(pb.AppendToUploadRequest(upload_uuid=upload, expected_size=9, max_size=MAX))
    await asyncio.sleep(0.2)
    assert not call.done()
    await call.write(pb.AppendToUploadRequest(data=b"more"))
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    missing = new_uuid()  # never appended to: empty, and still no file
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await append(node, missing, 3, [b"abc"])
    assert raised.value.details() == f"upload {missing} has 0 bytes, not 3"
    assert not (node.uploads / missing).exists()


async def test_an_append_past_max_size_keeps_nothing(node: Node) -> None:
    upload = new_uuid()
    await append(node, upload, 0, [b"a" * 10], max_size=20)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await append(node, upload, 10, [b"b" * 6, b"c" * 6], max_size=20)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        f"upload {upload} may not grow past 20 bytes; the append was not kept"
    )
    assert reason(raised.value) == "UPLOAD_TOO_LARGE"
    assert (node.uploads / upload).read_bytes() == b"a" * 10
    assert await append(node, upload, 10, [b"d" * 10], max_size=20) == 20  # exactly fits

    first = new_uuid()  # a first append over the limit leaves no file
    with pytest.raises(grpc.aio.AioRpcError):
        await append(node, first, 0, [b"e" * 21], max_size=20)
    assert not (node.uploads / first).exists()


async def test_a_cancelled_append_leaves_the_size_it_found(node: Node) -> None:
    upload = new_uuid()
    path = node.uploads / upload
    await append(node, upload, 0, [b"kept" * 256])
    call = node.stub.AppendToUpload(metadata=node.metadata)
    await call.write(pb.AppendToUploadRequest(upload_uuid=upload, expected_size=1024, max_size=MAX))
    for _ in range(4):
        await call.write(pb.AppendToUploadRequest(data=b"z" * 65536))
    await eventually(lambda: size_of(path) > 1024)  # the node has written some
    call.cancel()
    await eventually(lambda: size_of(path) == 1024)
    assert path.read_bytes() == b"kept" * 256
    assert await append(node, upload, 1024, [b"more"]) == 1028  # the lock was let go

    fresh = new_uuid()  # a cancelled first append leaves no file
    call = node.stub.AppendToUpload(metadata=node.metadata)
    await call.write(pb.AppendToUploadRequest(upload_uuid=fresh, max_size=MAX, data=b"y" * 9))
    await eventually(lambda: size_of(node.uploads / fresh) == 9)
    call.cancel()
    await eventually(lambda: size_of(node.uploads / fresh) == -1)


async def test_concurrent_appends_to_one_upload_go_one_after_the_other(node: Node) -> None:
    upload = new_uuid()
    results = await asyncio.gather(
        append(node, upload, 0, [b"a" * 4096] * 8),
        append(node, upload, 0, [b"b" * 4096] * 8),
        return_exceptions=True,
    )
    sizes = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert sizes == [32768] and len(refused) == 1
    assert refused[0].details() == f"upload {upload} has 32768 bytes, not 0"
    content = (node.uploads / upload).read_bytes()
    assert content in (b"a" * 32768, b"b" * 32768)


async def test_truncate(node: Node) -> None:
    upload = new_uuid()
    await append(node, upload, 0, [b"0123456789"])

    async def truncate(size: int, which: str = upload) -> int:
        reply = await node.stub.TruncateUploadFile(
            pb.TruncateUploadFileRequest(upload_uuid=which, size=size), metadata=node.metadata
        )
        return int(reply.size)

    assert await truncate(10) == 10
    assert await truncate(4) == 4
    assert (node.uploads / upload).read_bytes() == b"0123"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await truncate(5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == f"cannot truncate upload {upload} to 5 bytes: it has 4"
    assert reason(raised.value) == "TRUNCATE_PAST_END"
    assert await append(node, upload, 4, [b"45"]) == 6

    never = new_uuid()
    assert await truncate(0, never) == 0  # never appended to: empty
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await truncate(1, never)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "upload not found"
    assert reason(raised.value) == "UPLOAD_NOT_FOUND"


async def test_an_empty_upload_is_not_sealed(node: Node) -> None:
    empty, never, blob = new_uuid(), new_uuid(), new_uuid()
    assert await append(node, empty, 0, []) == 0
    for upload in (empty, never):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await node.stub.SealUpload(
                pb.SealUploadRequest(upload_uuid=upload, blob_uuid=blob), metadata=node.metadata
            )
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert raised.value.details() == "upload is empty"
        assert reason(raised.value) == "UPLOAD_EMPTY"
    assert not node.blobs.path(blob).exists()


@pytest.fixture
def qcow2s(tmp_path: Path) -> tuple[Path, Path]:
    """A self-contained qcow2 image, and one backed by a host file."""
    alone = tmp_path / "alone.qcow2"
    backed = tmp_path / "backed.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(alone), "1M"], check=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw",
         str(backed), "1M"],
        check=True,
    )  # fmt: skip
    return alone, backed


async def test_seal_detects_qcow2_and_iso_and_refuses_qcow2_referring_elsewhere(
    node: Node, qcow2s: tuple[Path, Path]
) -> None:
    alone, backed = qcow2s
    iso = bytearray(0x8800)
    iso[0x8000:0x8006] = b"\x01CD001"
    found = {}
    for name, data in (("qcow2", alone.read_bytes()), ("iso", bytes(iso))):
        upload, blob = new_uuid(), new_uuid()
        await append(node, upload, 0, [data])
        reply = await node.stub.SealUpload(
            pb.SealUploadRequest(upload_uuid=upload, blob_uuid=blob), metadata=node.metadata
        )
        found[name] = reply.format
    assert found == {"qcow2": "qcow2", "iso": "iso"}

    upload, blob = new_uuid(), new_uuid()
    await append(node, upload, 0, [backed.read_bytes()])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await node.stub.SealUpload(
            pb.SealUploadRequest(upload_uuid=upload, blob_uuid=blob), metadata=node.metadata
        )
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.details() == (
        f"upload {upload}: qcow2 images that refer to other files are refused"
    )
    assert reason(raised.value) == "IMAGE_REFUSED"
    assert not node.blobs.path(blob).exists()
    assert (node.uploads / upload).exists()  # the api discards it


async def test_discard(node: Node) -> None:
    upload = new_uuid()
    await append(node, upload, 0, [b"bye"])
    for _ in range(2):  # a missing file is fine
        await node.stub.DiscardUpload(
            pb.DiscardUploadRequest(upload_uuid=upload), metadata=node.metadata
        )
        assert not (node.uploads / upload).exists()


async def read_blob(node: Node, blob: str, offset: int = 0, limit: int = 0) -> list[bytes]:
    call = node.stub.ReadBlob(
        pb.ReadBlobRequest(blob_uuid=blob, offset=offset, limit=limit), metadata=node.metadata
    )
    return [reply.data async for reply in call]


async def test_read_blob_ranges(node: Node) -> None:
    blob = new_uuid()
    data = os.urandom(2 * CHUNK + 1000)
    with node.blobs.writer(blob) as out:
        out.write(data)
        out.commit()
    whole = await read_blob(node, blob)
    assert [len(c) for c in whole] == [CHUNK, CHUNK, 1000]
    assert b"".join(whole) == data
    assert b"".join(await read_blob(node, blob, offset=CHUNK + 5)) == data[CHUNK + 5 :]
    assert b"".join(await read_blob(node, blob, offset=10, limit=CHUNK)) == data[10 : CHUNK + 10]
    assert b"".join(await read_blob(node, blob, offset=len(data) - 3, limit=99)) == data[-3:]
    assert await read_blob(node, blob, offset=len(data)) == []
    assert await read_blob(node, blob, offset=len(data) + 1) == []


async def test_read_blob_of_a_blob_not_here(node: Node) -> None:
    blob = new_uuid()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await read_blob(node, blob)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == f"blob {blob} is not on this node"
    assert reason(raised.value) == "BLOB_NOT_HERE"


@pytest.mark.parametrize("bad", ["", "../../etc/passwd", "ABCDEF00-0000-4000-8000-000000000000"])
async def test_names_that_are_no_canonical_uuid_are_refused(node: Node, bad: str) -> None:
    calls = [
        append(node, bad, 0, [b"x"]),
        node.stub.TruncateUploadFile(
            pb.TruncateUploadFileRequest(upload_uuid=bad), metadata=node.metadata
        ),
        node.stub.SealUpload(
            pb.SealUploadRequest(upload_uuid=new_uuid(), blob_uuid=bad), metadata=node.metadata
        ),
        node.stub.DiscardUpload(pb.DiscardUploadRequest(upload_uuid=bad), metadata=node.metadata),
        read_blob(node, bad),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert not node.uploads.exists() or list(node.uploads.iterdir()) == []


async def test_a_user_token_is_refused(node: Node) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await node.stub.DiscardUpload(
            pb.DiscardUploadRequest(upload_uuid=new_uuid()), metadata=node.user_metadata
        )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await node.stub.AppendToUpload(messages(new_uuid(), 0, [b"x"]), metadata=node.user_metadata)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def seal(node: Node, upload: str) -> pb.SealUploadResponse:
    return await node.stub.SealUpload(
        pb.SealUploadRequest(upload_uuid=upload, blob_uuid=new_uuid()), metadata=node.metadata
    )


async def test_a_seal_takes_the_digest_appends_kept_without_reading_the_file(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(path: Path) -> None:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(uploads_module, "inspect", never)
    upload = new_uuid()
    data = b"QFI\xfb" + os.urandom(2**20)  # qcow2's magic, but no valid header: refused
    plain = os.urandom(2**20 + 5)
    await append(node, upload, 0, [plain[:1000], plain[1000 : 2**20]])
    with pytest.raises(grpc.aio.AioRpcError):  # past max_size: rolled back, digest kept
        await append(node, upload, 2**20, [plain[2**20 :]], max_size=2**20 + 1)
    await append(node, upload, 2**20, [plain[2**20 :]])
    sealed = await seal(node, upload)
    assert (sealed.size, sealed.sha512) == (len(plain), hashlib.sha512(plain).hexdigest())
    assert sealed.format == "raw"

    qcow = new_uuid()  # the format comes from the first bytes the digest kept
    await append(node, qcow, 0, [data[:2], data[2:]])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await seal(node, qcow)
    assert reason(raised.value) == "IMAGE_REFUSED"


async def test_a_seal_hashes_the_file_when_no_digest_covers_it(node: Node) -> None:
    data = os.urandom(3 * 2**20)
    cut = new_uuid()  # a truncate into the hashed bytes
    await append(node, cut, 0, [data])
    await node.stub.TruncateUploadFile(
        pb.TruncateUploadFileRequest(upload_uuid=cut, size=2**20), metadata=node.metadata
    )
    await append(node, cut, 2**20, [data[2**20 :]])
    assert (await seal(node, cut)).sha512 == hashlib.sha512(data).hexdigest()

    emptied = new_uuid()  # cut back to nothing: a fresh digest
    await append(node, emptied, 0, [b"gone"])
    await node.stub.TruncateUploadFile(
        pb.TruncateUploadFileRequest(upload_uuid=emptied, size=0), metadata=node.metadata
    )
    await append(node, emptied, 0, [data])
    assert (await seal(node, emptied)).sha512 == hashlib.sha512(data).hexdigest()

    restarted = new_uuid()  # bytes an earlier node agent wrote: no digest here
    (node.uploads / restarted).write_bytes(data[:1000])
    await append(node, restarted, 1000, [data[1000:]])
    assert (await seal(node, restarted)).sha512 == hashlib.sha512(data).hexdigest()
