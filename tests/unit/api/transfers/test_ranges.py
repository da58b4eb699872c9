"""services/api/transfers/ranges.py: which bytes a blob read sends."""

from __future__ import annotations

import pytest

from services.api.transfers.ranges import ByteRange, Span, parse_range, span_of
from services.common import errors

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=500-", ByteRange(500, None)),
        ("bytes=-200", ByteRange(None, 200)),
        ("BYTES = 5 - 5", ByteRange(5, 5)),
        ("  bytes=7-  ", ByteRange(7, None)),
    ],
)
def test_one_range_is_parsed(header: str, parsed: ByteRange) -> None:
    assert parse_range(header) == parsed


@pytest.mark.parametrize(
    "header",
    ["", "bytes=", "bytes=-", "bytes=5-2", "items=0-5", "bytes=0-5,10-20", "bytes=a-b", "0-5"],
)
def test_anything_but_one_valid_range_is_ignored(header: str) -> None:
    assert parse_range(header) is None


def test_offset_and_limit_as_shaken_fist_reads_them() -> None:
    assert span_of(SIZE, None, None, "") == Span(0, SIZE, size=SIZE)
    assert span_of(SIZE, 100, None, "") == Span(100, 900, size=SIZE)
    assert span_of(SIZE, 100, 50, "") == Span(100, 50, size=SIZE)
    assert span_of(SIZE, 100, 0, "") == Span(100, 900, size=SIZE)  # 0: to the end
    assert span_of(SIZE, 990, 50, "") == Span(990, 10, size=SIZE)


def test_an_offset_at_or_past_the_end_is_an_empty_answer() -> None:
    assert span_of(SIZE, SIZE, None, "").length == 0
    assert span_of(SIZE, SIZE + 5, 10, "").length == 0


def test_the_clients_slices_cover_the_blob() -> None:
    """Client 0.8.3 reads slices of `limit`, advancing by what it got, until a short one."""
    slice_, offset, got = 300, 0, []
    while True:
        span = span_of(SIZE, offset, slice_, "")
        got.append((span.offset, span.length))
        offset += span.length
        if span.length < slice_:
            break
    assert got == [(0, 300), (300, 300), (600, 300), (900, 100)]


@pytest.mark.parametrize(("offset", "limit"), [(-1, None), (None, -1)])
def test_negative_offset_or_limit_is_a_400(offset: int | None, limit: int | None) -> None:
    with pytest.raises(errors.InvalidArgument):
        span_of(SIZE, offset, limit, "")


@pytest.mark.parametrize(
    ("header", "offset", "length", "content_range"),
    [
        ("bytes=0-99", 0, 100, "bytes 0-99/1000"),
        ("bytes=900-", 900, 100, "bytes 900-999/1000"),
        ("bytes=900-5000", 900, 100, "bytes 900-999/1000"),
        ("bytes=-200", 800, 200, "bytes 800-999/1000"),
        ("bytes=-5000", 0, SIZE, "bytes 0-999/1000"),
        ("bytes=999-999", 999, 1, "bytes 999-999/1000"),
    ],
)
def test_a_range_is_a_partial_answer(
    header: str, offset: int, length: int, content_range: str
) -> None:
    span = span_of(SIZE, None, None, header)
    assert (span.offset, span.length, span.partial) == (offset, length, True)
    assert span.content_range == content_range


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0"])
def test_a_range_past_the_end_is_a_416(header: str) -> None:
    with pytest.raises(errors.RangeNotSatisfiable) as caught:
        span_of(SIZE, None, None, header)
    assert caught.value.http_status == 416


def test_a_malformed_range_is_ignored_and_offset_applies() -> None:
    assert span_of(SIZE, 10, 5, "bytes=9-1") == Span(10, 5, size=SIZE)


def test_a_range_with_offset_or_limit_is_a_400() -> None:
    for offset, limit in ((0, None), (None, 10)):
        with pytest.raises(errors.InvalidArgument):
            span_of(SIZE, offset, limit, "bytes=0-1")
