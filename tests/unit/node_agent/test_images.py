"""services/node_agent/images.py: resolving disk bases and detecting formats."""

from __future__ import annotations

import pytest

from services.node_agent.images import (
    DEFAULT_SHORTHANDS,
    QCOW2_MAGIC,
    ImageError,
    detect_format,
    resolve_base,
)

TABLE = {"debian:11": "https://example.test/debian-11.qcow2", "bad:1": "file:///etc/passwd"}


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("debian:11", "https://example.test/debian-11.qcow2"),
        ("http://127.0.0.1:8000/boot.raw", "http://127.0.0.1:8000/boot.raw"),
        ("https://cloud.example/x.qcow2?v=1", "https://cloud.example/x.qcow2?v=1"),
        ("HTTPS://cloud.example/x.qcow2", "HTTPS://cloud.example/x.qcow2"),
    ],
)
def test_resolve_base_accepts_shorthands_and_http_urls(base: str, url: str) -> None:
    assert resolve_base(base, TABLE) == url


@pytest.mark.parametrize(
    "base",
    [
        "debian:13",
        "label:x",
        "sf://x",
        "ftp://example.test/x.raw",
        "file:///etc/passwd",
        "http:///no-host",
        "http://[::1",
        "",
        "/var/lib/images/x.raw",
    ],
)
def test_resolve_base_refuses_the_rest(base: str) -> None:
    with pytest.raises(ImageError, match=r"expected an http\(s\) URL|not a valid URL"):
        resolve_base(base, TABLE)


def test_a_shorthand_must_map_to_an_http_url() -> None:
    with pytest.raises(ImageError, match="'bad:1' maps to 'file:///etc/passwd'"):
        resolve_base("bad:1", TABLE)


def test_unknown_shorthand_names_the_known_ones() -> None:
    with pytest.raises(ImageError, match=r"'debian:13'.*known: bad:1, debian:11"):
        resolve_base("debian:13", TABLE)


def test_default_shorthands_are_official_debian_cloud_images() -> None:
    assert set(DEFAULT_SHORTHANDS) >= {"debian:11", "debian:12"}
    for name, url in DEFAULT_SHORTHANDS.items():
        assert resolve_base(name, DEFAULT_SHORTHANDS) == url
        assert url.startswith("https://cloud.debian.org/images/cloud/")
        assert url.endswith(f"debian-{name.split(':')[1]}-generic-amd64.qcow2")


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (QCOW2_MAGIC + b"\x00\x00\x00\x03", "qcow2"),
        (QCOW2_MAGIC, "qcow2"),
        (b"QFI", "raw"),
        (b"\x00" * 512, "raw"),
        (b"\xeb\x63\x90", "raw"),
        (b"", "raw"),
    ],
)
def test_detect_format(head: bytes, fmt: str) -> None:
    assert detect_format(head) == fmt
