"""The event spool: a producer's unacknowledged events on local disk, so that
events survive while the eventlog is down and across a restart of the producer.

Layout: append-only segment files in one folder, named after the sequence of
their first event (`01733312345678901234.spool`, zero-padded to the 20
digits of a uint64 so names sort in sequence order). Each record is a 4-byte
big-endian length followed by a serialized `EventRecord`. A new segment
starts every `segment_bytes` or `segment_events`, whichever comes first.

Acknowledgement deletes whole segments whose last sequence is at or below the
acknowledged one; the last sequence of each segment is kept in memory. Acks
are not persisted otherwise: after a restart the surviving segments are
replayed whole, and the already-committed events among them are harmless
because the eventlog ignores an event id it already holds.

Writes are buffered: `append` only queues bytes in memory. `take` swaps the
queued bytes out (no I/O, so the event loop may call it) into a `Flush`, whose
`run` appends them to their segment files and makes them durable
(`fdatasync` of each segment written, and an `fsync` of the folder when a
segment file was created); `run` blocks, so the emitter calls it off the
event loop, and `finish` takes its outcome back. While a flush is under way
only it touches the files it names: a segment acknowledged meanwhile is
deleted once the flush is finished. A segment counts as synced only once a
sync of it returned: after a failed one, the next flush syncs it (and the
folder, if it was new) again. The emitter (`services/common/events.py`)
commits a flush before a request that emitted answers, and every 50 ms
otherwise; `close` does so too. What a crash can lose, process or machine
alike:

- events emitted during a request whose answer has left: nothing;
- events emitted outside a request (a node agent's reconciler, say): those
  emitted since the last sync, at most one interval;
- a write torn by either crash leaves a truncated final record, which `load`
  ignores.

Events acknowledged before their first flush are never written, so while the
eventlog keeps up, events emitted outside requests cost almost no I/O; a
request's events cost one write and one sync, shared by every request that
answers at the same time (group commit, in the emitter).

One process owns a spool folder at a time (an exclusive `flock` on
`spool.lock`, taken by `load` and released by `close`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from google.protobuf.message import DecodeError
from sfmesh.v1 import eventlog_service_pb2

log = logging.getLogger("sfmesh.events")

SUFFIX = ".spool"
LOCK_NAME = "spool.lock"
_LENGTH_BYTES = 4


class Entry(NamedTuple):
    """One spooled event."""

    sequence: int
    """The producer's sequence of the event."""
    payload: bytes
    """The serialized `EventRecord`."""


class Dropped(NamedTuple):
    """What `trim` deleted."""

    events: int
    """How many events."""
    last_sequence: int
    """The highest sequence among them."""


class SpoolLockedError(RuntimeError):
    """Another process owns the spool folder."""


@dataclass
class _Segment:
    """One segment file and what is known of it without reading it."""

    path: Path
    last: int
    count: int = 0
    size: int = 0
    """Bytes in the file plus bytes still buffered."""
    buffered: list[bytes] = field(default_factory=list)
    sealed: bool = False
    """No more appends go here."""
    created: bool = False
    """Its file exists: found by `load` or written by a flush."""
    unsynced: bool = False
    """Written by a flush whose sync failed: the next flush syncs it again."""
    flushing: bool = False
    """Named by the flush under way, which alone may touch its file."""
    deleted: bool = False
    """Acknowledged or trimmed; its file goes once no flush names it."""


class _Part(NamedTuple):
    """One segment's share of a `Flush`."""

    segment: _Segment
    """For `Spool.finish` only: `Flush.run` reads nothing else of it."""
    path: Path
    data: bytes
    """The records to append; none when it only needs a sync."""


class Flush:
    """Records swapped out of the spool's buffers by `Spool.take`: `run`
    writes and syncs them on any thread, then `Spool.finish` takes the
    outcome back on the spool's."""

    def __init__(self, parts: tuple[_Part, ...], directory: Path | None) -> None:
        self.parts = parts
        self.directory = directory
        """The folder to `fsync`, when a segment file is new since it last was."""
        self.written = 0
        """How many parts `run` has appended to their files."""
        self.synced = False
        """Whether `run` synced every part and the folder."""

    def __bool__(self) -> bool:
        return bool(self.parts)

    def run(self) -> None:
        """Append each part to its segment file, then sync them all; blocking,
        so call it off the event loop. Raises OSError. Few system calls: each
        costs a thread another turn at the GIL, which a busy loop delays."""
        fds: list[int] = []
        try:
            for part in self.parts:
                if part.data:
                    fds.append(os.open(part.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
                    _append(fds[-1], part.data)
                else:
                    fds.append(os.open(part.path, os.O_RDONLY))
                self.written += 1
            for fd in fds:
                os.fdatasync(fd)
            if self.directory is not None:
                _fsync_directory(self.directory)
        finally:
            for fd in fds:
                os.close(fd)
        self.synced = True


def frame(payload: bytes) -> bytes:
    """A record as it is stored: length prefix and payload. Pure."""
    return len(payload).to_bytes(_LENGTH_BYTES, "big") + payload


def read_records(data: bytes) -> tuple[list[Entry], int]:
    """Parse the records of one segment's bytes. Pure.

    Returns the entries and how many trailing bytes were ignored: a truncated
    final record (a crash mid-write), or anything from the first record that
    does not parse as an event onwards.
    """
    entries: list[Entry] = []
    offset = 0
    while offset + _LENGTH_BYTES <= len(data):
        length = int.from_bytes(data[offset : offset + _LENGTH_BYTES], "big")
        end = offset + _LENGTH_BYTES + length
        if end > len(data):
            break
        payload = data[offset + _LENGTH_BYTES : end]
        try:
            record = eventlog_service_pb2.EventRecord.FromString(payload)
        except DecodeError:
            break
        if not record.event_id or not record.sequence:
            break  # e.g. a zero-filled tail left by a machine crash
        entries.append(Entry(record.sequence, payload))
        offset = end
    return entries, len(data) - offset


class Spool:
    """Segment files of unacknowledged events in `directory`.

    Call `load` once before `append`. Every method runs on the owner's
    thread; those that touch the disk are `load`, `acknowledge` and `trim`
    (deleting files), `flush` and `close`. A `Flush` from `take` runs on any
    thread, one at a time.
    """

    def __init__(
        self, directory: Path, *, segment_bytes: int = 4 << 20, segment_events: int = 50_000
    ) -> None:
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._segment_events = segment_events
        self._segments: deque[_Segment] = deque()
        self._size = 0
        self._lock: BinaryIO | None = None
        self._flushing: Flush | None = None
        self._directory_unsynced = False
        """A segment file was created and the folder's sync failed since."""

    @property
    def size_bytes(self) -> int:
        """Bytes held by the spool, written or buffered."""
        return self._size

    @property
    def segment_count(self) -> int:
        """How many segments the spool holds."""
        return len(self._segments)

    def load(self) -> list[Entry]:
        """Take the folder and read every segment in it, in sequence order.

        Segments that hold no valid record are deleted. The others stay, sealed,
        until an acknowledgement or `trim` covers them.
        """
        if self._segments:
            raise RuntimeError("the spool is already loaded")
        self._directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        entries: list[Entry] = []
        for path in sorted(self._directory.glob(f"*{SUFFIX}"), key=_first_sequence):
            found, ignored = read_records(path.read_bytes())
            if ignored:
                log.warning(
                    "spool: ignored a damaged tail",
                    extra={"fields": {"segment": path.name, "bytes": ignored}},
                )
            if not found:
                path.unlink(missing_ok=True)
                continue
            size = sum(_LENGTH_BYTES + len(entry.payload) for entry in found)
            self._segments.append(
                _Segment(
                    path=path,
                    last=max(entry.sequence for entry in found),
                    count=len(found),
                    size=size,
                    sealed=True,
                    created=True,
                )
            )
            self._size += size
            entries.extend(found)
        entries.sort(key=lambda entry: entry.sequence)
        return entries

    def append(self, entry: Entry) -> None:
        """Queue one event for the next flush; no I/O."""
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.sealed:
            segment = self._start_segment(entry.sequence)
        record = frame(entry.payload)
        segment.buffered.append(record)
        segment.last = max(segment.last, entry.sequence)
        segment.count += 1
        segment.size += len(record)
        self._size += len(record)
        if segment.size >= self._segment_bytes or segment.count >= self._segment_events:
            segment.sealed = True

    def take(self) -> Flush:
        """Swap every buffered record out into a `Flush`, with the segments
        and folder still to sync after a failed one; no I/O. `finish` it
        before taking the next."""
        if self._flushing is not None:
            raise RuntimeError("the previous flush is not finished")
        parts = []
        for segment in self._segments:
            if segment.buffered or segment.unsynced:
                parts.append(_Part(segment, segment.path, b"".join(segment.buffered)))
                segment.buffered.clear()
                segment.flushing = True
        creates = any(not part.segment.created for part in parts)
        directory = self._directory if creates or self._directory_unsynced else None
        self._flushing = Flush(tuple(parts), directory)
        return self._flushing

    def finish(self, flush: Flush) -> None:
        """Take back what `flush.run` did: what it did not write is buffered
        again, ahead of what came since, and what it wrote but did not sync
        stays to sync; segments deleted meanwhile go now."""
        self._flushing = None
        self._directory_unsynced = flush.directory is not None and not flush.synced
        for index, part in enumerate(flush.parts):
            segment = part.segment
            segment.flushing = False
            if segment.deleted:
                _unlink(segment.path)
            elif index < flush.written:
                segment.created = True
                segment.unsynced = not flush.synced
            elif part.data:
                segment.buffered.insert(0, part.data)

    def flush(self) -> None:
        """Write and sync every buffered record on this thread. Raises OSError."""
        flush = self.take()
        try:
            flush.run()
        finally:
            self.finish(flush)

    def acknowledge(self, sequence: int) -> None:
        """Forget every segment whose events all have a sequence <= `sequence`."""
        while self._segments and self._segments[0].last <= sequence:
            self._delete(self._segments.popleft())

    def trim(self, limit_bytes: int) -> Dropped | None:
        """Delete the oldest segments until the spool holds at most
        `limit_bytes`; say what was dropped, if anything."""
        count = 0
        last = 0
        while self._segments and self._size > limit_bytes:
            segment = self._segments.popleft()
            count += segment.count
            last = max(last, segment.last)
            self._delete(segment)
        return Dropped(count, last) if count else None

    def close(self) -> None:
        """Write what is buffered, sync it, close the files and release the
        folder. The spool may be loaded again afterwards."""
        try:
            self.flush()
        finally:
            self._release()

    def _release(self) -> None:
        self._segments.clear()
        self._size = 0
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    def _start_segment(self, first: int) -> _Segment:
        segment = _Segment(path=self._directory / f"{first:020d}{SUFFIX}", last=first)
        self._segments.append(segment)
        return segment

    def _delete(self, segment: _Segment) -> None:
        self._size -= segment.size
        segment.buffered.clear()
        segment.deleted = True
        if segment.created and not segment.flushing:
            _unlink(segment.path)

    def _take_lock(self) -> None:
        if self._lock is not None:
            return
        lock = (self._directory / LOCK_NAME).open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise SpoolLockedError(f"another process uses the spool {self._directory}") from exc
        self._lock = lock


def _first_sequence(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return 0


def _append(fd: int, data: bytes) -> None:
    """Append records to an open segment file. A failed write (a full disk)
    is cut back off the file, so no torn record sits mid-file."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, os.lseek(fd, 0, os.SEEK_END) - (len(data) - len(view)))
        raise


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning(
            "spool: cannot delete a segment",
            extra={"fields": {"segment": path.name, "error": str(exc)}},
        )


def _fsync_directory(directory: Path) -> None:
    """Make new segment names durable too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
