"""`SqliteEventStore`: the eventlog's `EventStore` in one SQLite file.

Durability: WAL journal with `synchronous=FULL`, so a batch's COMMIT is fsynced
before `append` returns and the servicer acknowledges it (WAL with NORMAL survives
a process crash but may lose the last commits on power loss).

Concurrency: one write connection behind a lock (the servicer writes from one
thread anyway), and one read connection per reading thread; WAL lets readers run
while the writer commits, each read seeing the last committed batch.

Cursors are an AUTOINCREMENT rowid: SQLite never hands out the same one twice, even
when a prune deletes the newest rows, so a watch's cursor stays meaningful.

A file SQLite cannot read, or whose `PRAGMA quick_check` fails, is renamed aside
(with its -wal and -shm) to `<name>.corrupt-<unix time>` and a fresh store starts.
Rows and the reads' SQL are `rows.py`'s, shared with the PostgreSQL store.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sfmesh.v1 import eventlog_service_pb2

from services.eventlog import rows
from services.eventlog.storage import PruneNote, StoredEvent

log = logging.getLogger(__name__)

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS events (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    object_type TEXT NOT NULL,
    object_uuid TEXT NOT NULL,
    type INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    fqdn TEXT,
    duration REAL,
    message TEXT NOT NULL,
    extra BLOB
);
CREATE TABLE IF NOT EXISTS producers (
    producer_id TEXT PRIMARY KEY,
    committed_sequence INTEGER NOT NULL
);
"""
    + rows.INDEXES
)

_INSERT = (
    f"INSERT OR IGNORE INTO events ({', '.join(rows.INSERTED)})"
    f" VALUES ({', '.join('?' for _ in rows.INSERTED)})"
)
_UPSERT_PRODUCER = (
    "INSERT INTO producers (producer_id, committed_sequence) VALUES (?, ?)"
    " ON CONFLICT (producer_id) DO UPDATE SET committed_sequence ="
    " max(committed_sequence, excluded.committed_sequence) RETURNING committed_sequence"
)


def aside_path(path: Path, now: float) -> Path:
    """Where a corrupt store file is moved: `<name>.corrupt-<unix time>`."""
    return path.with_name(f"{path.name}.corrupt-{int(now)}")


class CorruptStoreError(sqlite3.DatabaseError):
    """`PRAGMA quick_check` did not answer "ok"."""


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    """Whether `exc` says the file is damaged (not a database, malformed, failed check),
    as opposed to locked, unreadable or out of space, which must not cost the store."""
    if isinstance(exc, CorruptStoreError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class SqliteEventStore:
    """An `EventStore` in the SQLite file at `path` (created with its folder if missing)."""

    def __init__(self, path: Path, *, cache_mib: int = 64) -> None:
        self._path = path
        self._cache_mib = cache_mib
        self._lock = threading.Lock()
        """Held by every write; one transaction at a time on the write connection."""
        self._readers_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = self._open_writer()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            aside = self._set_aside()
            log.warning(
                "event store %s is corrupt (%s); moved it to %s and started afresh",
                path,
                exc,
                aside,
            )
            self._writer = self._open_writer()

    @property
    def path(self) -> Path:
        """The store's file."""
        return self._path

    # --- opening -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute(f"PRAGMA cache_size = -{self._cache_mib * 1024}")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            # Check before anything writes, so a damaged file is set aside as found.
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise CorruptStoreError(f"quick_check: {check}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_aside(self) -> Path:
        base = aside_path(self._path, time.time())
        aside, n = base, 0
        while aside.exists():
            n += 1
            aside = base.with_name(f"{base.name}.{n}")
        for suffix in ("", "-wal", "-shm"):
            source = self._path.with_name(self._path.name + suffix)
            if source.exists():
                source.rename(aside.with_name(aside.name + suffix))
        return aside

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    # --- writes --------------------------------------------------------------------------

    def append(self, producer_id: str, records: Sequence[eventlog_service_pb2.EventRecord]) -> int:
        """Store a batch in one fsynced transaction, skipping event ids already stored,
        and raise the producer's committed sequence to the batch's highest."""
        if not records:
            return self.committed_sequence(producer_id)
        return self.append_batches([(producer_id, records)])[0]

    def append_batches(
        self, batches: Sequence[tuple[str, Sequence[eventlog_service_pb2.EventRecord]]]
    ) -> list[int]:
        """Store several batches in one fsynced transaction (group commit)."""
        inserted = [rows.record_row(record) for _, records in batches for record in records]
        with self._lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, inserted)
                committed = [
                    self._raise_sequence(conn, producer_id, records)
                    for producer_id, records in batches
                ]
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return committed

    @staticmethod
    def _raise_sequence(
        conn: sqlite3.Connection,
        producer_id: str,
        records: Sequence[eventlog_service_pb2.EventRecord],
    ) -> int:
        top = max((record.sequence for record in records), default=0)
        return int(conn.execute(_UPSERT_PRODUCER, (producer_id, top)).fetchone()[0])

    def prune(self, now: float, retention: Mapping[int, float]) -> list[PruneNote]:
        """Delete, type by type, events older than `now - retention[type]`; one
        transaction per type, so appends are not held up by the whole sweep."""
        notes: list[PruneNote] = []
        for kind, before in rows.prune_cutoffs(now, retention):
            with self._lock:
                conn = self._writer
                conn.execute("BEGIN IMMEDIATE")
                try:
                    counts = conn.execute(
                        "SELECT object_type, object_uuid, count(*) FROM events"
                        " WHERE type = ? AND timestamp < ?"
                        " GROUP BY object_type, object_uuid ORDER BY object_type, object_uuid",
                        (kind, before),
                    ).fetchall()
                    if counts:
                        conn.execute(
                            "DELETE FROM events WHERE type = ? AND timestamp < ?", (kind, before)
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            notes.extend(PruneNote(ot, ou, kind, count, before) for ot, ou, count in counts)
        return notes

    # --- reads ---------------------------------------------------------------------------

    def committed_sequence(self, producer_id: str) -> int:
        """The producer's highest committed sequence; 0 if unknown."""
        row = (
            self._reader()
            .execute(
                "SELECT committed_sequence FROM producers WHERE producer_id = ?", (producer_id,)
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def _read(self, select: rows.Select | None) -> list[StoredEvent]:
        if select is None:
            return []
        found = self._reader().execute(select.sql, select.args).fetchall()
        return [rows.stored_event(row) for row in found]

    def newest(
        self, object_type: str, object_uuid: str, *, event_type: int = 0, limit: int = 100
    ) -> list[StoredEvent]:
        """One object's events, newest first (timestamp desc, then cursor desc)."""
        return self._read(rows.newest(object_type, object_uuid, event_type=event_type, limit=limit))

    def after(
        self,
        object_type: str,
        object_uuid: str,
        *,
        cursor: int,
        event_type: int = 0,
        limit: int = 1000,
    ) -> list[StoredEvent]:
        """One object's events stored after `cursor`, oldest first."""
        return self._read(
            rows.after(object_type, object_uuid, cursor=cursor, event_type=event_type, limit=limit)
        )

    def since(
        self,
        object_type: str,
        object_uuid: str,
        *,
        timestamp: float,
        event_type: int = 0,
        limit: int = 1000,
    ) -> list[StoredEvent]:
        """One object's events with timestamp >= `timestamp`, oldest first (cursor asc)."""
        select = rows.since(
            object_type, object_uuid, timestamp=timestamp, event_type=event_type, limit=limit
        )
        return self._read(select)

    def last_cursor(self) -> int:
        """The highest cursor ever issued (pruned or not); 0 for an empty store."""
        row = (
            self._reader()
            .execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
            .fetchone()
        )
        return int(row[0]) if row else 0

    def size_bytes(self) -> int:
        """The file's size and its write-ahead log's."""
        return sum(_size(self._path.with_name(self._path.name + suffix)) for suffix in ("", "-wal"))

    def watch_commits(self, wake: Callable[[], None]) -> None:
        """Never calls `wake`: only this process writes the file, and its writer
        announces each of its commits itself."""

    def close(self) -> None:
        """Close every connection; the WAL is checkpointed by the last one to close."""
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._lock:
            self._writer.close()


def _size(path: Path) -> int:
    """A file's size; 0 when it does not exist (a WAL checkpointed away)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
