"""What disk bases and source URLs name. Pure."""

from __future__ import annotations

import pytest

from services.api.artifacts import sources
from services.api.artifacts.sources import Kind
from services.common import errors

BLOB = "4b5a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"


@pytest.mark.parametrize(
    ("base", "kind"),
    [
        ("", Kind.BLANK),
        ("None", Kind.BLANK),
        ("debian:11", Kind.IMAGE),
        ("https://example.com/disk.qcow2", Kind.IMAGE),
        ("label:golden", Kind.LABEL),
        ("sf://label/team/golden", Kind.SF_LABEL),
        ("sf://upload/team/disk", Kind.SF_UPLOAD),
        (f"sf://snapshot/{BLOB}", Kind.SF_SNAPSHOT),
        (f"sf://blob/{BLOB.upper()}", Kind.SF_BLOB),
    ],
)
def test_known_bases(base: str, kind: Kind) -> None:
    assert sources.parse_base("disk[0].base", base).kind == kind


def test_uuids_are_canonical() -> None:
    assert sources.parse_base("b", f"sf://blob/{BLOB.upper()}").uuid == BLOB


@pytest.mark.parametrize(
    "base",
    [
        "sf://instance/x/vda",  # Q7: not a bogus image
        "sf://blob/not-a-uuid",
        "sf://label/only-one",
        "sf://label/a/b/c",
        "sf://nothing",
        "label:",
        "label:a/b",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "http:///no-host",
    ],
)
def test_anything_else_is_a_400(base: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=r"disk\[0\]\.base"):
        sources.parse_base("disk[0].base", base)


def test_names_are_the_last_segment_or_the_shorthand() -> None:
    assert sources.name_of("https://example.com/d/latest.qcow2?x=1") == "latest.qcow2?x=1"
    assert sources.name_of("debian:12") == "debian:12"
    assert sources.label_url("ns", "l") == "sf://label/ns/l"


def test_urls_are_bounded() -> None:
    with pytest.raises(errors.InvalidArgument, match="url"):
        sources.check_image_url("url", "https://example.com/" + "a" * 3000)
