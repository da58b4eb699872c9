"""Where this node keeps blob files: behind `BlobStore`, local disk by default.

Layout under the root (folders 0755, files 0644, so that qemu, running as
another user, can read a blob it boots from):

    <uuid[:2]>/<uuid>           a whole blob, never changed once named
    <uuid[:2]>/<uuid>.partial   a blob being written

A partial file is created exclusively, so two writers never share one
(artifacts reference §11 Q25); its sha512 is computed while it is written
(on a thread of the writer's own, a few chunks behind the writes), its
dirty pages are flushed as it grows (on another thread, so the sync at the
end has little left to do), and it is renamed to the blob's name only once
whole, synced and accepted by its writer. A partial left by a crash is
removed by the next writer once it is older than `STALE_PARTIAL_SECONDS`;
until then a second writer is refused.
A file under a blob's name is therefore always a whole blob, but only the
blob record (its size and sha512) says which content that is.

A whole file written elsewhere on the same filesystem (an upload) comes in
by `adopt`: hard-linked to the exclusive partial name, synced, then renamed
into place, so it is never copied. A partial file a day old cannot belong to
a live writer; `sweep_partials` removes those when the node agent starts.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

STALE_PARTIAL_SECONDS = 300.0
"""Age after which a partial file is taken for a crashed writer's."""
SWEPT_PARTIAL_SECONDS = 86400.0
"""Age after which `sweep_partials` removes a partial file."""
DIR_MODE = 0o755
FILE_MODE = 0o644
HASH_LAG = 8
"""Chunks a writer lets wait to be hashed before a write waits."""
FLUSH_EVERY = 64 << 20
"""Bytes written between flushes of a partial file's dirty pages."""

_T = TypeVar("_T")


class BlobBusy(Exception):
    """Another writer is writing this blob now."""


class BlobExists(Exception):
    """A whole blob already has this name."""


class BlobWriter(Protocol):
    """A blob being written: bytes in, then `commit` or nothing."""

    partial: Path
    """The partial file, for checks that read what was written so far."""
    size: int
    """Bytes written so far."""

    def write(self, chunk: bytes) -> None:
        """Append `chunk`."""

    def sha512(self) -> str:
        """Hex sha512 of what was written so far."""

    def commit(self) -> Path:
        """Sync the partial file and give it the blob's name; that path."""


class BlobStore(Protocol):
    """The blob files of this node."""

    def path(self, uuid: str) -> Path:
        """Where the whole blob `uuid` lives (whether or not it is there)."""

    def holds(self, uuid: str, size: int) -> bool:
        """Whether the whole blob `uuid` of `size` bytes is here."""

    def writer(self, uuid: str) -> contextlib.AbstractContextManager[BlobWriter]:
        """A new blob `uuid` to write; its partial file is removed when the
        block ends without a commit. Raises BlobBusy."""

    def link(self, source: str, uuid: str) -> Path:
        """Give the content of blob `source` the name `uuid` too (a hard link,
        put in place atomically); the new path."""

    def adopt(self, uuid: str, source: Path) -> Path:
        """Make the whole file `source` blob `uuid` (renamed, not copied, on
        the same filesystem); `source` is gone after. Raises BlobBusy, and
        BlobExists when a blob already has that name."""

    def remove(self, uuid: str) -> None:
        """Remove the file of blob `uuid`; no-op when absent."""


class _LocalWriter:
    """`BlobWriter` over one exclusively created partial file."""

    def __init__(self, fd: int, partial: Path, target: Path) -> None:
        self._file = os.fdopen(fd, "wb", buffering=0)  # readable by checks at once
        self._digest = hashlib.sha512()
        self._hashing: collections.deque[concurrent.futures.Future[None]] = collections.deque()
        self._hasher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="blob-hash")
        self._flusher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="blob-flush")
        self._flushing: concurrent.futures.Future[None] | None = None
        self._unflushed = 0
        self._target = target
        self.partial = partial
        self.size = 0
        self.committed = False

    def write(self, chunk: bytes) -> None:
        while len(self._hashing) >= HASH_LAG:
            self._hashing.popleft().result()
        view = memoryview(chunk)
        while view:  # a short write (the disk filling up) is written on, to ENOSPC
            view = view[self._file.write(view) :]
        self._hashing.append(self._hasher.submit(self._digest.update, chunk))
        self.size += len(chunk)
        self._unflushed += len(chunk)
        if self._unflushed >= FLUSH_EVERY and (self._flushing is None or self._flushing.done()):
            self._unflushed = 0
            self._flushing = self._flusher.submit(os.fdatasync, self._file.fileno())

    def sha512(self) -> str:
        while self._hashing:
            self._hashing.popleft().result()
        return self._digest.hexdigest()

    def commit(self) -> Path:
        self._settle()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self._target)
        _fsync_folder(self._target.parent)
        self.committed = True
        return self._target

    def close(self) -> None:
        self._settle()
        self._file.close()

    def _settle(self) -> None:
        """Let the hashing and flushing in flight end (their errors are the
        commit's), and the writer's threads go."""
        self._hasher.shutdown(wait=True)
        self._flusher.shutdown(wait=True)
        if self._flushing is not None:
            self._flushing.result()


class LocalBlobStore:
    """Blob files on this node's disk under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, uuid: str) -> Path:
        if len(uuid) < 2 or "/" in uuid or uuid.startswith("."):
            raise ValueError(f"not a blob uuid: {uuid!r}")
        return self.root / uuid[:2] / uuid

    def holds(self, uuid: str, size: int) -> bool:
        try:
            return self.path(uuid).stat().st_size == size
        except OSError:
            return False

    @contextlib.contextmanager
    def writer(self, uuid: str) -> Iterator[BlobWriter]:
        target = self.path(uuid)
        _folders(self.root, target.parent)
        partial = target.with_name(f"{uuid}.partial")
        writer = _LocalWriter(_create_exclusive(partial), partial, target)
        try:
            yield writer
        finally:
            if not writer.committed:
                writer.close()
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()

    def link(self, source: str, uuid: str) -> Path:
        target = self.path(uuid)
        _folders(self.root, target.parent)
        staged = target.with_name(f".{uuid}.link-{os.getpid()}-{time.monotonic_ns()}")
        os.link(self.path(source), staged)
        try:
            os.replace(staged, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
            raise
        _fsync_folder(target.parent)
        return target

    def adopt(self, uuid: str, source: Path) -> Path:
        target = self.path(uuid)
        _folders(self.root, target.parent)
        partial = target.with_name(f"{uuid}.partial")
        try:
            _claim(partial, lambda: os.link(source, partial))
            os.utime(partial)  # the source's times: it would pass for a stale partial
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return self._adopt_by_copy(uuid, source)
        try:
            _sync_file(partial)
            os.chmod(partial, FILE_MODE)
            if target.exists():  # every writer renames while it holds the partial
                raise BlobExists(f"blob {uuid} already exists")
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        _fsync_folder(target.parent)
        source.unlink()
        _fsync_folder(source.parent)
        return target

    def _adopt_by_copy(self, uuid: str, source: Path) -> Path:
        """`adopt` across filesystems: a copy through a writer."""
        with self.writer(uuid) as out, source.open("rb") as data:
            while chunk := data.read(1024 * 1024):
                out.write(chunk)
            if self.path(uuid).exists():
                raise BlobExists(f"blob {uuid} already exists")
            target = out.commit()
        source.unlink()
        _fsync_folder(source.parent)
        return target

    def remove(self, uuid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(uuid).unlink()

    def sweep_partials(self, older_than: float = SWEPT_PARTIAL_SECONDS) -> list[Path]:
        """Remove partial files not changed for `older_than` seconds (left
        by writers that crashed); those removed."""
        removed = []
        now = time.time()
        for partial in self.root.glob("*/*.partial"):
            with contextlib.suppress(FileNotFoundError):
                if now - partial.stat().st_mtime > older_than:
                    partial.unlink()
                    removed.append(partial)
        return removed


def _create_exclusive(partial: Path) -> int:
    """Open `partial` as a new file of this writer's alone (see `_claim`).
    Raises BlobBusy."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = _claim(partial, lambda: os.open(partial, flags, FILE_MODE))
    os.fchmod(fd, FILE_MODE)  # whatever the umask
    return fd


def _claim(partial: Path, create: Callable[[], _T]) -> _T:
    """`create()` the file `partial`, which must not exist (it raises
    FileExistsError then): a partial file of a writer gone for
    `STALE_PARTIAL_SECONDS` is removed first. Raises BlobBusy."""
    for _ in range(2):
        try:
            return create()
        except FileExistsError:
            try:
                age = time.time() - partial.stat().st_mtime
            except FileNotFoundError:
                continue  # its writer just finished or gave up
            if age < STALE_PARTIAL_SECONDS:
                raise BlobBusy(f"{partial.name} is being written by another writer") from None
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            continue
    raise BlobBusy(f"{partial.name} is being written by another writer")


def _folders(root: Path, folder: Path) -> None:
    """`root` and `folder` made, traversable and readable by qemu."""
    for each in (root, folder):
        each.mkdir(parents=True, exist_ok=True)
        if each.stat().st_mode & 0o7777 != DIR_MODE:
            each.chmod(DIR_MODE)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
