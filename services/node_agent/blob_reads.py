"""Reading a range of a blob file in chunks, for `ReadBlob` (the api's blob
downloads now, peer copies later).

`read_spans` decides which bytes go out in which chunk (pure); `read_range`
reads them one chunk at a time on a thread, so a caller that stops asking
(gRPC flow control) holds the reading at one chunk in memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

CHUNK = 1024 * 1024
"""The most bytes in one chunk."""
READ_THREADS = 8
"""Reads at once across all blob reads of this process; more wait."""

_READERS = concurrent.futures.ThreadPoolExecutor(READ_THREADS, thread_name_prefix="blob-read")


def read_spans(size: int, offset: int, limit: int, chunk: int = CHUNK) -> Iterator[tuple[int, int]]:
    """(position, length) of each chunk to send of a file of `size` bytes,
    from `offset`, at most `limit` bytes (0: to the end): none when `offset`
    is at or past the end. Pure."""
    end = size if limit == 0 else min(size, offset + limit)
    for position in range(offset, end, chunk):
        yield position, min(chunk, end - position)


class BlobMissing(Exception):
    """The blob's file is not here."""


async def read_range(path: Path, offset: int, limit: int) -> AsyncGenerator[bytes, None]:
    """The bytes of the file `path` from `offset`, at most `limit` (0: to
    the end), in chunks of at most `CHUNK`. Raises BlobMissing before the
    first chunk."""
    try:
        fd = await asyncio.to_thread(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BlobMissing(str(path)) from None
    reading: concurrent.futures.Future[bytes] | None = None
    try:
        size = os.fstat(fd).st_size
        for position, length in read_spans(size, offset, limit):
            reading = _READERS.submit(os.pread, fd, length, position)
            data = await asyncio.wrap_future(reading)
            if not data:  # a whole blob never shrinks; end quietly if it did
                return
            yield data
    finally:
        # Closed once no read is in flight: a cancelled caller does not
        # stop the thread, and a number closed under it could be reused.
        if reading is None:
            os.close(fd)
        else:
            reading.add_done_callback(lambda _: os.close(fd))
