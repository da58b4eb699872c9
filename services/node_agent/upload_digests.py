"""The sha512 of each upload's file, kept up to date as appends write it,
so sealing a large upload does not read the whole file again.

The hashing runs on a thread of its own, behind the writes: an append is
acknowledged once its bytes are on disk, not once they are hashed, and at
most `LAG` chunks wait to be hashed. Whoever reads a digest waits for it.

A digest is only ever a hint checked against the file: sealing uses it when
it covers exactly the file's size, and hashes the file otherwise (after a
node agent restart, a truncate into the hashed part, or an eviction). An
append works on a copy of the digest and keeps it only when the append is
acknowledged, so a rolled-back append leaves the digest of what remains.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from services.node_agent.formats import HEAD_BYTES

KEPT = 1024
"""Digests kept at most; the least recently used goes first (its upload is
then hashed in full when sealed)."""
LAG = 16
"""Chunks at most waiting to be hashed, per digest; an append waits beyond."""


@dataclass
class RunningDigest:
    """The sha512 and first bytes of an upload's first `size` bytes, hashed
    on `hasher` (one thread: chunks are hashed in the order fed)."""

    hasher: concurrent.futures.Executor
    size: int = 0
    head: bytes = b""
    sha512: Any = field(default_factory=hashlib.sha512)
    _waiting: collections.deque[concurrent.futures.Future[None]] = field(
        default_factory=collections.deque
    )

    async def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the file; they are hashed later."""
        while len(self._waiting) >= LAG:
            await asyncio.wrap_future(self._waiting.popleft())
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self.size += len(chunk)
        self._waiting.append(self.hasher.submit(self.sha512.update, chunk))

    async def settled(self) -> None:
        """Wait until every chunk fed is hashed."""
        while self._waiting:
            await asyncio.wrap_future(self._waiting.popleft())

    def hexdigest(self) -> str:
        """The sha512 of the bytes fed, once hashed (blocking)."""
        concurrent.futures.wait(self._waiting)
        for job in self._waiting:
            job.result()
        return str(self.sha512.hexdigest())

    def copy(self) -> RunningDigest:
        """An independent digest of the same bytes, to extend tentatively
        (call once `settled`)."""
        assert not self._waiting, "a digest is copied once settled"
        return RunningDigest(self.hasher, self.size, self.head, self.sha512.copy())


class UploadDigests:
    """The running digests of uploads on this node, at most `kept` of them;
    safe to use from the write threads."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._digests: OrderedDict[str, RunningDigest] = OrderedDict()
        self._guard = threading.Lock()
        self._hasher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="upload-hash")

    async def start(self, uuid: str, size: int) -> RunningDigest | None:
        """A digest to extend by an append that starts at `size` bytes; None
        when the bytes before it are not covered (the seal then hashes)."""
        if size == 0:
            return RunningDigest(self._hasher)
        with self._guard:
            kept = self._digests.get(uuid)
        if kept is None or kept.size != size:
            return None
        await kept.settled()
        return kept.copy()

    def keep(self, uuid: str, digest: RunningDigest | None) -> None:
        """Keep `digest` as the one of the upload's whole file (an
        acknowledged append); None forgets it."""
        with self._guard:
            self._digests.pop(uuid, None)
            if digest is None:
                return
            self._digests[uuid] = digest
            while len(self._digests) > self._kept:
                self._digests.popitem(last=False)

    def truncated(self, uuid: str, size: int) -> None:
        """The file was cut back to `size` bytes."""
        with self._guard:
            kept = self._digests.get(uuid)
            stale = kept is not None and kept.size != size
        if stale:
            self.keep(uuid, RunningDigest(self._hasher) if size == 0 else None)

    def take(self, uuid: str, size: int) -> RunningDigest | None:
        """Forget the upload's digest, returning it when it covers exactly
        `size` bytes (`size` -1: only forget it)."""
        with self._guard:
            kept = self._digests.pop(uuid, None)
        return kept if kept is not None and kept.size == size else None
