"""What kind of disk image a blob is, from its first bytes. Pure.

qcow2 starts with its magic; an ISO 9660 image has its first volume
descriptor at sector 16 (byte 0x8000): a type byte, then "CD001". Anything
else is taken for a raw disk.
"""

from __future__ import annotations

QCOW2_MAGIC = b"QFI\xfb"
ISO_MAGIC = b"CD001"
ISO_MAGIC_OFFSET = 0x8001
HEAD_BYTES = ISO_MAGIC_OFFSET + len(ISO_MAGIC)
"""How many first bytes `detect_format` needs to tell every format apart."""
FORMATS = ("qcow2", "iso", "raw")


def detect_format(head: bytes) -> str:
    """The format, one of `FORMATS`, from the first `HEAD_BYTES` bytes of a
    file (fewer when the file is shorter)."""
    if head.startswith(QCOW2_MAGIC):
        return "qcow2"
    if head[ISO_MAGIC_OFFSET:HEAD_BYTES] == ISO_MAGIC:
        return "iso"
    return "raw"
