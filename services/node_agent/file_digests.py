"""The size, sha512 and first bytes of a file, read once: what a blob is
checked and described by."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from services.node_agent.formats import HEAD_BYTES

CHUNK = 1024 * 1024
"""Bytes read at a time."""


@dataclass(frozen=True)
class FileDigest:
    """What one read of a file found."""

    size: int
    """Bytes."""
    sha512: str
    """Hex sha512."""
    head: bytes
    """The first `formats.HEAD_BYTES` bytes (fewer in a shorter file), for
    `formats.detect_format`."""


def file_digest(path: Path) -> FileDigest:
    """Read `path` once (blocking)."""
    digest = hashlib.sha512()
    head = b""
    size = 0
    with path.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            size += len(chunk)
    return FileDigest(size=size, sha512=digest.hexdigest(), head=head)
