"""TransferService: uploads (`uploads.py`), their conversion into artifacts
(`conversion.py`) and blob data (`blob_data.py`). Each RPC names the caller
and hands over; the choices where Shaken Fist has a bug are in
docs/compatibility.md."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.api import httpbody_pb2
from google.protobuf import empty_pb2
from sfmesh.v1 import artifact_pb2, transfer_service_pb2, transfer_service_pb2_grpc

from services.api.transfers.blob_data import BlobData
from services.api.transfers.conversion import Conversion
from services.api.transfers.uploads import Uploads
from services.common.interceptors import caller


class TransferServicer(transfer_service_pb2_grpc.TransferServiceServicer):
    """Bytes in and out of the mesh."""

    def __init__(self, uploads: Uploads, conversion: Conversion, blob_data: BlobData) -> None:
        self._uploads = uploads
        self._conversion = conversion
        self._blob_data = blob_data

    async def CreateUpload(
        self,
        request: transfer_service_pb2.CreateUploadRequest,
        context: grpc.aio.ServicerContext,
    ) -> transfer_service_pb2.Upload:
        return await self._uploads.create(caller().namespace)

    async def AppendUpload(
        self,
        request_iterator: AsyncIterator[transfer_service_pb2.AppendUploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> transfer_service_pb2.AppendUploadResponse:
        size = await self._uploads.append(request_iterator, caller().namespace)
        return transfer_service_pb2.AppendUploadResponse(size=size)

    async def TruncateUpload(
        self,
        request: transfer_service_pb2.TruncateUploadRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        await self._uploads.truncate(request.upload_uuid, request.offset, caller().namespace)
        return empty_pb2.Empty()

    async def ConvertUpload(
        self,
        request: transfer_service_pb2.ConvertUploadRequest,
        context: grpc.aio.ServicerContext,
    ) -> artifact_pb2.Artifact:
        return await self._conversion.convert(request, caller().namespace)

    async def GetBlobData(
        self,
        request: transfer_service_pb2.GetBlobDataRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        async for chunk in self._blob_data.read(request, caller().namespace, context):
            yield chunk
