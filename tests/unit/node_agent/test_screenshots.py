"""services/node_agent/screenshots.py: the PNG made of QEMU's image, and the
record of its blob."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sfmesh.v1 import artifact_pb2

from services.node_agent.screenshots import BadImage, Shot, screenshot_record, to_png


def ppm(width: int, height: int, pixel: bytes) -> bytes:
    """A binary PPM (P6), as QEMU's screendump writes."""
    return f"P6\n{width} {height}\n255\n".encode() + pixel * (width * height)


def test_a_ppm_becomes_the_same_picture_in_png() -> None:
    png = to_png(ppm(4, 3, b"\x10\x20\x30"))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        assert image.size == (4, 3)
        assert image.convert("RGB").getpixel((3, 2)) == (0x10, 0x20, 0x30)


def test_a_png_is_kept_as_it_is() -> None:
    once = to_png(ppm(2, 2, b"\xff\x00\x00"))
    assert to_png(once) == once


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image",
        b"P6\n4 4\n255\n\x00",
        to_png(ppm(64, 64, b"\x01\x02\x03"))[:-40],  # a PNG cut short
    ],
)
def test_what_is_no_image_is_refused(data: bytes) -> None:
    with pytest.raises(BadImage):
        to_png(data)


def test_the_blob_record_is_owned_and_expires() -> None:
    shot = Shot(blob_uuid="b-uuid", size=1234, sha512="ab" * 64)
    record = screenshot_record(shot, node="hv1", namespace="ns1", expires_at=5000.0, now=1400.0)
    blob = record.blob
    assert blob.uuid == "b-uuid"
    assert blob.state == artifact_pb2.BLOB_STATE_CREATED
    assert (blob.size, blob.sha512, blob.format) == (1234, "ab" * 64, "png")
    assert list(blob.locations) == ["hv1"]
    assert blob.reference_count == 0
    assert blob.HasField("metadata")
    assert (record.owner_namespace, record.expires_at, record.created_at) == ("ns1", 5000.0, 1400.0)
    assert not record.maker_node  # recorded whole, never reserved
