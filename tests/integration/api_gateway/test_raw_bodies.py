"""Raw bodies through the gateway, both ways, against a real grpc.aio server.

The upstream is a small fake TransferService that lives only in this file:
uploads stream a request body into a client-streaming RPC in chunks;
blob data streams `HttpBody` messages out as one raw body.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc
import httpx
import pytest
from google.api import httpbody_pb2
from grpc_reflection.v1alpha import reflection
from sfmesh.v1 import transfer_service_pb2, transfer_service_pb2_grpc

from services.api_gateway.uploads import CHUNK

SERVICE = transfer_service_pb2.DESCRIPTOR.services_by_name["TransferService"].full_name
BLOB = b"".join(os.urandom(1024) for _ in range(700))  # 700 KiB: three messages


class FakeTransfers(transfer_service_pb2_grpc.TransferServiceServicer):
    """Keeps what uploads sent; serves BLOB in 300 KiB messages."""

    def __init__(self) -> None:
        self.messages: list[transfer_service_pb2.AppendUploadRequest] = []
        self.metadata: dict[str, str] = {}

    async def AppendUpload(self, request_iterator: Any, context: Any) -> Any:
        self.messages = []
        self.metadata = dict(context.invocation_metadata())
        async for message in request_iterator:
            self.messages.append(message)
            if message.upload_uuid == "gone":  # refused at once, the body still coming
                await context.abort(grpc.StatusCode.NOT_FOUND, "upload not found")
        size = sum(len(m.data.data) for m in self.messages)
        return transfer_service_pb2.AppendUploadResponse(size=size)

    async def GetBlobData(self, request: Any, context: Any) -> AsyncIterator[Any]:
        if request.uuid == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "blob not found")
        data = BLOB[request.offset :]
        if request.range:
            await context.send_initial_metadata(
                (("x-http-code", "206"), ("content-range", f"bytes 0-9/{len(BLOB)}"))
            )
            data = BLOB[:10]
        step = 300 * 1024
        for start in range(0, len(data), step):
            yield httpbody_pb2.HttpBody(content_type="text/plain", data=data[start : start + step])
            if request.uuid == "breaks":
                await context.abort(grpc.StatusCode.DATA_LOSS, "replica vanished")


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[tuple[str, FakeTransfers]]:
    server = grpc.aio.server()
    fake = FakeTransfers()
    transfer_service_pb2_grpc.add_TransferServiceServicer_to_server(fake, server)
    reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", fake
    await server.stop(0)


@pytest.fixture(scope="module")
async def gateway(
    upstream: tuple[str, FakeTransfers],
    gateway_runner: Callable[..., AbstractAsyncContextManager[str]],
) -> AsyncIterator[str]:
    async with gateway_runner(upstream[0], max_upload=len(BLOB)) as url:
        yield url


async def test_an_upload_streams_in_chunks_the_first_naming_the_upload(
    gateway: str, upstream: tuple[str, FakeTransfers]
) -> None:
    fake = upstream[1]
    headers = {"Content-Type": "application/octet-stream", "Authorization": "Bearer t"}

    async def body() -> AsyncIterator[bytes]:  # chunked, as a streaming client sends
        for start in range(0, len(BLOB), 64 * 1024):
            yield BLOB[start : start + 64 * 1024]

    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post("/upload/u1", content=body(), headers=headers)
    assert response.status_code == 200
    assert response.json() == len(BLOB)
    assert fake.messages[0].upload_uuid == "u1"
    assert fake.messages[0].data.content_type == "application/octet-stream"
    assert all(m.upload_uuid == "" for m in fake.messages[1:])
    assert all(len(m.data.data) <= CHUNK for m in fake.messages)
    assert b"".join(m.data.data for m in fake.messages) == BLOB
    assert fake.metadata["authorization"] == "Bearer t"


async def test_an_empty_upload_is_one_message(
    gateway: str, upstream: tuple[str, FakeTransfers]
) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post("/upload/u2", content=b"")
    assert response.status_code == 200 and response.json() == 0
    assert [m.upload_uuid for m in upstream[1].messages] == ["u2"]


async def test_an_upload_the_upstream_refuses_early_answers_its_error(gateway: str) -> None:
    """Refused on its first message, with most of the body still to come:
    the refusal is the answer, however the next write races it."""
    async with httpx.AsyncClient(base_url=gateway) as client:
        for _ in range(20):
            response = await client.post("/upload/gone", content=BLOB)
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "upload not found"


async def test_an_upload_over_the_limit_is_413(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        declared = await client.post("/upload/u3", content=BLOB + b"x")

        async def unsized() -> AsyncIterator[bytes]:
            yield BLOB
            yield b"x"

        streamed = await client.post("/upload/u3", content=unsized())
    assert declared.status_code == streamed.status_code == 413


async def test_blob_data_is_one_raw_body_with_the_first_content_type(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        whole = await client.get("/blobs/b1/data")
        tail = await client.get("/blobs/b1/data", params={"offset": 1000})
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "text/plain"
    assert whole.content == BLOB
    assert tail.content == BLOB[1000:]


async def test_a_range_answers_206_with_content_range(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/blobs/b1/data", headers={"Range": "bytes=0-9"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 0-9/{len(BLOB)}"
    assert response.content == BLOB[:10]


async def test_a_failure_before_the_first_bytes_is_an_error_answer(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/blobs/missing/data")
    assert response.status_code == 404
    assert response.json()["error"] == "blob not found"


async def test_a_failure_after_the_first_bytes_cuts_the_body(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/blobs/breaks/data")
    await asyncio.sleep(0)
