"""services/node_agent/transfers.py's pure parts: the uuid check, and the
one table from what uploads refuse to domain errors."""

from __future__ import annotations

import errno

import grpc
import pytest

from services.common import errors
from services.node_agent.blob_store import BlobBusy, BlobExists
from services.node_agent.transfers import check_uuid, upload_error
from services.node_agent.uploads import (
    BlobConflict,
    ImageRefused,
    PastEnd,
    SizeMismatch,
    TooLarge,
    UploadEmpty,
    UploadMissing,
)

UPLOAD = "0b5c4a55-46a4-4d1c-9a52-0a4d2ac4c8a1"
BLOB = "5f0e1c2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"


@pytest.mark.parametrize(
    "value",
    ["", "x", "../etc", UPLOAD.upper(), UPLOAD.replace("-", ""), f"{{{UPLOAD}}}", UPLOAD + "/"],
)
def test_check_uuid_refuses_all_but_canonical_uuids(value: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="upload_uuid"):
        check_uuid("upload_uuid", value)


def test_check_uuid_accepts_a_canonical_uuid() -> None:
    check_uuid("upload_uuid", UPLOAD)


@pytest.mark.parametrize(
    ("raised", "code", "http", "reason", "message"),
    [
        (
            SizeMismatch(5, 3),
            grpc.StatusCode.FAILED_PRECONDITION,
            409,
            "UPLOAD_SIZE_MISMATCH",
            f"upload {UPLOAD} has 5 bytes, not 3",
        ),
        (
            TooLarge(20),
            grpc.StatusCode.INVALID_ARGUMENT,
            400,
            "UPLOAD_TOO_LARGE",
            f"upload {UPLOAD} may not grow past 20 bytes; the append was not kept",
        ),
        (
            PastEnd(9, 4),
            grpc.StatusCode.INVALID_ARGUMENT,
            400,
            "TRUNCATE_PAST_END",
            f"cannot truncate upload {UPLOAD} to 9 bytes: it has 4",
        ),
        (UploadMissing(), grpc.StatusCode.NOT_FOUND, 404, "UPLOAD_NOT_FOUND", "upload not found"),
        (
            UploadEmpty(),
            grpc.StatusCode.FAILED_PRECONDITION,
            409,
            "UPLOAD_EMPTY",
            "upload is empty",
        ),
        (
            ImageRefused("upload u: qcow2 images that refer to other files are refused"),
            grpc.StatusCode.FAILED_PRECONDITION,
            409,
            "IMAGE_REFUSED",
            "upload u: qcow2 images that refer to other files are refused",
        ),
        (
            BlobConflict(),
            grpc.StatusCode.ALREADY_EXISTS,
            409,
            "BLOB_EXISTS",
            f"blob {BLOB} already exists with other content",
        ),
        (
            BlobExists(),
            grpc.StatusCode.ALREADY_EXISTS,
            409,
            "BLOB_EXISTS",
            f"blob {BLOB} already exists with other content",
        ),
        (
            BlobBusy(),
            grpc.StatusCode.ABORTED,
            409,
            "BLOB_BUSY",
            f"blob {BLOB} is being written by another writer",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            507,
            "NO_SPACE",
            f"no space left on this node for upload {UPLOAD}",
        ),
        (
            OSError(errno.EIO, "Input/output error"),
            grpc.StatusCode.INTERNAL,
            500,
            "INTERNAL",
            f"upload {UPLOAD}: [Errno 5] Input/output error",
        ),
    ],
)
def test_upload_error(
    raised: Exception, code: grpc.StatusCode, http: int, reason: str, message: str
) -> None:
    mapped = upload_error(UPLOAD, raised, blob_uuid=BLOB)
    assert (mapped.code, mapped.http_status, mapped.reason, mapped.message) == (
        code,
        http,
        reason,
        message,
    )


def test_upload_error_passes_domain_errors_on() -> None:
    refused = errors.InvalidArgument("max_size must be positive")
    assert upload_error(UPLOAD, refused) is refused
