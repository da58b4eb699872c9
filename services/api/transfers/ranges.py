"""Which bytes of a blob a `GET /blobs/{uuid}/data` sends, and with what
status (reference §6.3). Pure.

- `offset` and `limit` as Shaken Fist reads them: from `offset` (default 0),
  at most `limit` bytes (unset or 0: to the end); an offset at or past the
  end is an empty 200. Negative values are a 400.
- An HTTP `Range` header of one range (RFC 9110 §14.1.2), which Shaken Fist
  does not read: `bytes=<first>-<last>`, `bytes=<first>-` or
  `bytes=-<suffix>`, answered 206 with `Content-Range: bytes a-b/size`. A
  range wholly past the end (or `bytes=-0`) is a 416. A header that is not
  one such range (another unit, several ranges, `last` before `first`,
  anything malformed) is ignored, as RFC 9110 allows: the answer is the
  whole 200. A valid Range together with `offset` or `limit` is a 400: the
  two ways of asking do not combine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.common import errors

_RANGE = re.compile(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)", re.IGNORECASE)


@dataclass(frozen=True)
class Span:
    """The bytes to send."""

    offset: int
    """The first byte."""
    length: int
    """How many bytes (0: nothing to send)."""
    partial: bool = False
    """Whether this answers a Range header: 206 with `content_range`."""
    size: int = 0
    """The blob's size, for Content-Range."""

    @property
    def content_range(self) -> str:
        """The Content-Range of a partial answer: `bytes a-b/size`."""
        return f"bytes {self.offset}-{self.offset + self.length - 1}/{self.size}"


@dataclass(frozen=True)
class ByteRange:
    """One range of a Range header, before the blob's size is known."""

    first: int | None
    """The first byte; None for a suffix range."""
    last: int | None
    """The last byte (inclusive); None to the end. For a suffix range, the
    suffix's length."""


def parse_range(header: str) -> ByteRange | None:
    """The one byte range a Range header asks for; None when it is to be
    ignored (empty, another unit, several ranges, malformed)."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        return ByteRange(None, int(last))
    if last and int(last) < int(first):
        return None  # RFC 9110: an invalid range-spec; the header is ignored
    return ByteRange(int(first), int(last) if last else None)


def unsatisfiable(size: int) -> errors.RangeNotSatisfiable:
    """The 416 of a range past the end of `size` bytes."""
    return errors.RangeNotSatisfiable(
        f"range not satisfiable: the blob has {size} bytes", reason="RANGE_NOT_SATISFIABLE"
    )


def span_of_range(wanted: ByteRange, size: int) -> Span:
    """The bytes a parsed Range asks of `size` bytes; 416 when none of them exist."""
    if wanted.first is None:
        length = min(wanted.last or 0, size)
        if length == 0:
            raise unsatisfiable(size)
        return Span(size - length, length, partial=True, size=size)
    if wanted.first >= size:
        raise unsatisfiable(size)
    last = size - 1 if wanted.last is None else min(wanted.last, size - 1)
    return Span(wanted.first, last - wanted.first + 1, partial=True, size=size)


def span_of(size: int, offset: int | None, limit: int | None, range_header: str) -> Span:
    """The bytes a request asks of a blob of `size` bytes."""
    if offset is not None and offset < 0:
        raise errors.InvalidArgument("offset must not be negative")
    if limit is not None and limit < 0:
        raise errors.InvalidArgument("limit must not be negative")
    wanted = parse_range(range_header) if range_header else None
    if wanted is not None:
        if offset is not None or limit is not None:
            raise errors.InvalidArgument("give either offset and limit or a Range header")
        return span_of_range(wanted, size)
    start = min(offset or 0, size)
    length = size - start
    if limit:
        length = min(length, limit)
    return Span(start, length, size=size)
