"""The upload and blob-data RPCs of NodeAgentService: AppendToUpload,
TruncateUploadFile, SealUpload, DiscardUpload and ReadBlob. Each checks
its request, calls `uploads.py` or `blob_reads.py`, and maps what they
refuse to a domain error (`services/common/errors.py`), here and nowhere
else.

An append is refused only once its stream has ended (the gateway, which
streams a request body into the api and so into this RPC, relies on
upstreams refusing a client stream only once it is over); a cancelled
append stops at once.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator

import grpc
from sfmesh.v1 import node_agent_service_pb2 as pb
from sfmesh.v1 import node_agent_service_pb2_grpc

from services.common import errors
from services.node_agent import blob_reads, naming
from services.node_agent.blob_store import BlobBusy, BlobExists, BlobStore
from services.node_agent.uploads import (
    BlobConflict,
    ImageRefused,
    PastEnd,
    SizeMismatch,
    TooLarge,
    UploadEmpty,
    UploadError,
    UploadFiles,
    UploadMissing,
)


class TransferServicer(node_agent_service_pb2_grpc.NodeAgentServiceServicer):
    """Uploads kept on this node, and reads of the blobs it holds."""

    def __init__(self, *, uploads: UploadFiles, blobs: BlobStore) -> None:
        self._uploads = uploads
        self._blobs = blobs

    async def AppendToUpload(
        self,
        request_iterator: AsyncIterator[pb.AppendToUploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> pb.UploadFileSize:
        messages = aiter(request_iterator)
        first = await anext(messages, None)
        if first is None:
            raise errors.InvalidArgument("upload_uuid is required")
        uuid = first.upload_uuid
        try:
            check_uuid("upload_uuid", uuid)
            if first.expected_size < 0:
                raise errors.InvalidArgument("expected_size may not be negative")
            if first.max_size <= 0:
                raise errors.InvalidArgument("max_size must be positive")
            size = await self._uploads.append(
                uuid,
                expected_size=first.expected_size,
                max_size=first.max_size,
                chunks=_chunks(first, messages),
            )
        except (errors.SfmeshError, UploadError, OSError) as exc:
            async for _ in messages:  # the caller hears the refusal once it is done
                pass
            raise upload_error(uuid, exc) from exc
        return pb.UploadFileSize(size=size)

    async def TruncateUploadFile(
        self, request: pb.TruncateUploadFileRequest, context: grpc.aio.ServicerContext
    ) -> pb.UploadFileSize:
        check_uuid("upload_uuid", request.upload_uuid)
        if request.size < 0:
            raise errors.InvalidArgument("size may not be negative")
        try:
            size = await self._uploads.truncate(request.upload_uuid, request.size)
        except (UploadError, OSError) as exc:
            raise upload_error(request.upload_uuid, exc) from exc
        return pb.UploadFileSize(size=size)

    async def SealUpload(
        self, request: pb.SealUploadRequest, context: grpc.aio.ServicerContext
    ) -> pb.SealUploadResponse:
        check_uuid("upload_uuid", request.upload_uuid)
        check_uuid("blob_uuid", request.blob_uuid)
        try:
            sealed = await self._uploads.seal(request.upload_uuid, request.blob_uuid)
        except (UploadError, BlobBusy, BlobExists, OSError) as exc:
            raise upload_error(request.upload_uuid, exc, blob_uuid=request.blob_uuid) from exc
        return pb.SealUploadResponse(size=sealed.size, sha512=sealed.sha512, format=sealed.format)

    async def DiscardUpload(
        self, request: pb.DiscardUploadRequest, context: grpc.aio.ServicerContext
    ) -> pb.DiscardUploadResponse:
        check_uuid("upload_uuid", request.upload_uuid)
        try:
            await self._uploads.discard(request.upload_uuid)
        except OSError as exc:
            raise upload_error(request.upload_uuid, exc) from exc
        return pb.DiscardUploadResponse()

    async def ReadBlob(
        self, request: pb.ReadBlobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ReadBlobResponse]:
        uuid = request.blob_uuid
        check_uuid("blob_uuid", uuid)
        if request.offset < 0 or request.limit < 0:
            raise errors.InvalidArgument("offset and limit may not be negative")
        chunks = blob_reads.read_range(self._blobs.path(uuid), request.offset, request.limit)
        try:
            async for data in chunks:
                yield pb.ReadBlobResponse(data=data)
        except blob_reads.BlobMissing:
            raise errors.NotFound(
                f"blob {uuid} is not on this node", reason="BLOB_NOT_HERE"
            ) from None
        finally:
            await chunks.aclose()


def check_uuid(field: str, value: str) -> None:
    """Refuse anything but a canonical uuid: it names a file. Pure."""
    if not value:
        raise errors.InvalidArgument(f"{field} is required")
    if not naming.is_uuid(value):
        raise errors.InvalidArgument(f"{field} {value!r} is not a canonical uuid")


def upload_error(uuid: str, exc: Exception, *, blob_uuid: str = "") -> errors.SfmeshError:
    """The domain error for what an upload operation raised. Pure."""
    match exc:
        case errors.SfmeshError():
            return exc
        case SizeMismatch():
            return errors.Conflict(
                f"upload {uuid} has {exc.actual} bytes, not {exc.expected}",
                reason="UPLOAD_SIZE_MISMATCH",
                facts={"size": str(exc.actual)},
            )
        case TooLarge():
            return errors.InvalidArgument(
                f"upload {uuid} may not grow past {exc.max_size} bytes; the append was not kept",
                reason="UPLOAD_TOO_LARGE",
            )
        case PastEnd():
            return errors.InvalidArgument(
                f"cannot truncate upload {uuid} to {exc.size} bytes: it has {exc.actual}",
                reason="TRUNCATE_PAST_END",
            )
        case UploadMissing():
            return errors.NotFound("upload not found", reason="UPLOAD_NOT_FOUND")
        case UploadEmpty():
            return errors.Conflict("upload is empty", reason="UPLOAD_EMPTY")
        case ImageRefused():
            return errors.Conflict(str(exc), reason="IMAGE_REFUSED")
        case BlobConflict() | BlobExists():
            return errors.AlreadyExists(
                f"blob {blob_uuid} already exists with other content", reason="BLOB_EXISTS"
            )
        case BlobBusy():
            return errors.Aborted(
                f"blob {blob_uuid} is being written by another writer", reason="BLOB_BUSY"
            )
        case OSError() if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return errors.InsufficientResources(
                f"no space left on this node for upload {uuid}", reason="NO_SPACE"
            )
    return errors.SfmeshError(f"upload {uuid}: {exc}")


async def _chunks(
    first: pb.AppendToUploadRequest, rest: AsyncIterator[pb.AppendToUploadRequest]
) -> AsyncIterator[bytes]:
    """The data of every message, the first's included (each read once:
    every read of a bytes field copies it)."""
    if data := first.data:
        yield data
    async for message in rest:
        if data := message.data:
            yield data
