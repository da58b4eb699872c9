"""Upload files on this node: `<state>/uploads/<uuid>` (0644), grown by
appends, cut back by truncates, and sealed into a blob of the blob store.

The api owns the upload records and their life; this module only keeps the
bytes. Its rules:

- **All or nothing.** An append writes at the end of the file and, if it
  fails, is cancelled or would pass its `max_size`, cuts the file back to
  its size before (a file the append created is removed). It is synced
  before it is acknowledged, so an acknowledged append survives a crash.
- **Checked against the caller's view.** Each append names the size it
  expects the file to have; any other size refuses it, telling the real one.
- **One at a time.** Appends, truncates, seals and discards of one upload
  wait for each other, so a second append checks its expected size against
  what the first left.
- **A missing file is an empty upload**: an upload never appended to has no
  file yet.
- **Seal** takes the file's sha512 and first bytes from the running digest
  the appends kept (`upload_digests.py`), or hashes the file (streamed on
  a thread) when no digest covers it; detects its format (`formats.py`),
  refuses a qcow2 that refers to other files, and makes it the blob by a
  rename (`BlobStore.adopt`). Sealing again after a crash or a lost answer
  finds the blob and answers its facts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from services.node_agent.blob_store import BlobStore
from services.node_agent.file_digests import file_digest
from services.node_agent.formats import detect_format
from services.node_agent.images import ImageError, check_self_contained
from services.node_agent.keyed_locks import KeyedLocks
from services.node_agent.upload_digests import RunningDigest, UploadDigests

log = logging.getLogger("sfmesh.node_agent.uploads")

FILE_MODE = 0o644
DIR_MODE = 0o755
WRITE_THREADS = 4
"""Threads writing appends; appends beyond wait for one."""
_T = TypeVar("_T")


class UploadError(Exception):
    """Base of what an upload operation refuses."""


class SizeMismatch(UploadError):
    """The file does not have the size the caller expected."""

    def __init__(self, actual: int, expected: int) -> None:
        super().__init__(f"the upload has {actual} bytes, not {expected}")
        self.actual = actual
        """The file's real size."""
        self.expected = expected


class TooLarge(UploadError):
    """The append would take the file past its `max_size`."""

    def __init__(self, max_size: int) -> None:
        super().__init__(f"the upload may not grow past {max_size} bytes")
        self.max_size = max_size


class PastEnd(UploadError):
    """A truncate to more bytes than the file has."""

    def __init__(self, size: int, actual: int) -> None:
        super().__init__(f"cannot truncate the upload to {size} bytes: it has {actual}")
        self.size = size
        self.actual = actual


class UploadMissing(UploadError):
    """The upload has no file here."""


class UploadEmpty(UploadError):
    """The upload has no bytes: there is nothing to seal."""


class ImageRefused(UploadError):
    """A qcow2 upload that refers to other files, or is not valid qcow2."""


class BlobConflict(UploadError):
    """The blob's name is taken by other content."""


@dataclass(frozen=True)
class Sealed:
    """What a sealed upload's blob is."""

    size: int
    """Bytes."""
    sha512: str
    """Hex sha512."""
    format: str
    """One of `formats.FORMATS`: "qcow2", "iso" or "raw"."""


class UploadFiles:
    """The upload files under `root`, sealed into `blobs`."""

    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = root
        self._blobs = blobs
        self._locks = KeyedLocks()
        self._running: set[asyncio.Task[Any]] = set()
        """Locked work whose caller may be gone: the loop keeps weak references."""
        self._digests = UploadDigests()
        self._writes = concurrent.futures.ThreadPoolExecutor(
            WRITE_THREADS, thread_name_prefix="upload-write"
        )

    def path(self, uuid: str) -> Path:
        """The file of upload `uuid` (a canonical uuid: the caller checks)."""
        return self.root / uuid

    async def append(
        self, uuid: str, *, expected_size: int, max_size: int, chunks: AsyncIterator[bytes]
    ) -> int:
        """Append every chunk, all or nothing; the new size. Raises
        SizeMismatch, TooLarge, OSError; a cancelled append leaves nothing."""
        async with self._locks.hold(uuid):
            fd, created = await self._opened(uuid, expected_size)
            digest = await self._digests.start(uuid, expected_size)
            append = _Append(fd, expected_size, self._writes, digest)
            try:
                async for chunk in chunks:
                    if append.size + len(chunk) > max_size:
                        raise TooLarge(max_size)
                    await append.write(chunk)
                await append.sync(self.root if created else None)
                self._digests.keep(uuid, digest)
            except BaseException:
                # Synchronously, so that a cancelled caller cannot leave the
                # lock before the file is back to its size.
                append.roll_back(self.path(uuid) if created else None)
                raise
            finally:
                os.close(fd)
            return append.size

    async def truncate(self, uuid: str, size: int) -> int:
        """Cut the file back to `size` bytes; that size. Raises PastEnd,
        UploadMissing (no file, `size` > 0)."""
        return await self._locked(uuid, self._truncate, uuid, size)

    async def discard(self, uuid: str) -> None:
        """Remove the file, if any."""
        await self._locked(uuid, self._discard, uuid)

    async def seal(self, uuid: str, blob_uuid: str) -> Sealed:
        """Make the upload's file blob `blob_uuid`; what the blob is. Raises
        UploadEmpty, ImageRefused, blob_store.BlobBusy and BlobExists."""
        return await self._locked(uuid, self._seal, uuid, blob_uuid)

    async def _locked(self, uuid: str, function: Callable[..., _T], *args: Any) -> _T:
        """`function(*args)` on a thread, holding the upload's lock until it
        returns, even when the caller is cancelled meanwhile: the lock
        must not be let go while the file still changes."""

        async def run() -> _T:
            async with self._locks.hold(uuid):
                return await asyncio.to_thread(function, *args)

        task = asyncio.ensure_future(run())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(_retrieved)
        return await asyncio.shield(task)

    async def _opened(self, uuid: str, expected_size: int) -> tuple[int, bool]:
        """`_open` on a write thread; a cancelled caller closes what it opened."""
        opening = self._writes.submit(self._open, uuid, expected_size)
        try:
            return await asyncio.wrap_future(opening)
        except asyncio.CancelledError:
            concurrent.futures.wait([opening])
            if not opening.cancelled() and opening.exception() is None:
                fd, created = opening.result()
                os.close(fd)
                if created:
                    self.path(uuid).unlink()
            raise

    def _open(self, uuid: str, expected_size: int) -> tuple[int, bool]:
        """The file open for writing and whether it was made now; checks
        its size first (blocking)."""
        path = self.path(uuid)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if expected_size != 0:
                raise SizeMismatch(0, expected_size) from None
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            fd = os.open(path, flags, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # whatever the umask: it becomes a blob qemu reads
            return fd, True
        actual = os.fstat(fd).st_size
        if actual != expected_size:
            os.close(fd)
            raise SizeMismatch(actual, expected_size)
        return fd, False

    def _discard(self, uuid: str) -> None:
        self._digests.take(uuid, -1)
        with contextlib.suppress(FileNotFoundError):
            self.path(uuid).unlink()

    def _truncate(self, uuid: str, size: int) -> int:
        try:
            fd = os.open(self.path(uuid), os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if size == 0:  # never appended to: empty
                return 0
            raise UploadMissing("upload not found") from None
        try:
            actual = os.fstat(fd).st_size
            if size > actual:
                raise PastEnd(size, actual)
            if size < actual:
                os.ftruncate(fd, size)
                os.fsync(fd)
        finally:
            os.close(fd)
        self._digests.truncated(uuid, size)
        return size

    def _seal(self, uuid: str, blob_uuid: str) -> Sealed:
        upload = self.path(uuid)
        blob = self._blobs.path(blob_uuid)
        if blob.exists():  # sealed before; the answer was lost, or the agent crashed
            sealed = inspect(blob)
            if upload.exists():  # the crash came between the rename and the unlink
                if not (upload.samefile(blob) or inspect(upload) == sealed):
                    raise BlobConflict(f"blob {blob_uuid} already exists with other content")
                upload.unlink()
            return sealed
        try:
            sealed = self._inspect(uuid, upload)
        except FileNotFoundError:
            raise UploadEmpty("upload is empty") from None
        if sealed.size == 0:
            raise UploadEmpty("upload is empty")
        if sealed.format == "qcow2":
            try:
                check_self_contained(f"upload {uuid}", upload)
            except ImageError as exc:
                raise ImageRefused(str(exc)) from exc
        self._blobs.adopt(blob_uuid, upload)
        log.info(
            "sealed upload",
            extra={"fields": {"upload": uuid, "blob": blob_uuid, "size": sealed.size}},
        )
        return sealed

    def _inspect(self, uuid: str, upload: Path) -> Sealed:
        """What the upload's file is: from its running digest when that
        covers the whole file, else read once (blocking)."""
        size = upload.stat().st_size
        digest = self._digests.take(uuid, size)
        if digest is None:
            return inspect(upload)
        return Sealed(
            size=size, sha512=digest.sha512.hexdigest(), format=detect_format(digest.head)
        )


def inspect(path: Path) -> Sealed:
    """Size, sha512 and format of the file `path`, read once (blocking)."""
    found = file_digest(path)
    return Sealed(size=found.size, sha512=found.sha512, format=detect_format(found.head))


class _Append:
    """One append in progress on an open file: writes at the end on the
    write threads, remembering the write in flight so a roll-back waits
    for it."""

    def __init__(
        self,
        fd: int,
        start: int,
        threads: concurrent.futures.Executor,
        digest: RunningDigest | None,
    ) -> None:
        self._fd = fd
        self._start = start
        self._threads = threads
        self._digest = digest
        self._pending: concurrent.futures.Future[None] | None = None
        self.size = start
        """The file's size once the writes so far are done."""

    async def write(self, chunk: bytes) -> None:
        """Write `chunk` at the end, and take it into the digest."""
        await self._run(_write_all, self._fd, chunk, self.size)
        self.size += len(chunk)
        if self._digest is not None:
            await self._digest.feed(chunk)

    async def sync(self, folder: Path | None) -> None:
        """Sync the file, and `folder` when the file is new in it."""
        await self._run(os.fsync, self._fd)
        if folder is not None:
            await self._run(_sync_folder, folder)

    async def _run(self, function: Callable[..., None], *args: Any) -> None:
        self._pending = self._threads.submit(function, *args)
        await asyncio.wrap_future(self._pending)

    def roll_back(self, created: Path | None) -> None:
        """Back to the size before the append (blocking, briefly: the write
        in flight, a truncate, a sync); the file removed when `created`."""
        if self._pending is not None:
            concurrent.futures.wait([self._pending])
        try:
            if created is not None:
                created.unlink()
            else:
                os.ftruncate(self._fd, self._start)
                os.fsync(self._fd)
        except OSError:
            log.exception("cannot roll an upload back to %d bytes", self._start)


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Take a finished task's exception, so a caller gone never leaves one
    unretrieved (the caller that stayed raises it)."""
    if not task.cancelled():
        task.exception()


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, position: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written
