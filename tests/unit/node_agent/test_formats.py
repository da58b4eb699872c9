"""services/node_agent/formats.py: a blob's format from its first bytes."""

from __future__ import annotations

import pytest

from services.node_agent.formats import HEAD_BYTES, detect_format


def iso_head(kind: bytes = b"\x01") -> bytes:
    return bytes(0x8000) + kind + b"CD001" + bytes(10)


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"QFI\xfb\x00\x00\x00\x03" + bytes(100), "qcow2"),
        (iso_head(), "iso"),
        (iso_head(b"\xff"), "iso"),  # any descriptor type: the magic decides
        (iso_head()[:HEAD_BYTES], "iso"),
        (iso_head()[: HEAD_BYTES - 1], "raw"),  # cut inside the magic
        (bytes(0x8000) + b"\x01CD002", "raw"),
        (b"", "raw"),
        (b"QFI", "raw"),
        (b"\x55\xaa" * 256, "raw"),
    ],
)
def test_detect_format(head: bytes, fmt: str) -> None:
    assert detect_format(head) == fmt
