"""`PostgresEventStore`: the eventlog's `EventStore` in a PostgreSQL database,
so that several eventlog replicas serve one store.

Cursors across replicas. A cursor is the `events.cursor` identity, drawn from
one sequence, so no two events share one and none is reused. Drawn is not
committed, though: were two replicas' transactions free to interleave, one
could draw 11..20 and commit before another that drew 1..10 commits, and a
watcher that read 20 would resume after it and never see 1..10. So every
append first takes one transaction-scoped advisory lock (`_APPEND_LOCK`),
before any id is drawn, and holds it until its commit: appends run one at a
time across all replicas, the ids of each are drawn after every earlier
append committed, and PostgreSQL makes a commit visible before it releases
the transaction's locks. Hence whoever sees cursor N already sees every
smaller cursor that will ever be committed. Reads take no lock. The cost is
one appender at a time, which group commit (`writer.py`) already assumes:
each transaction carries every batch that waited on its replica.

Each append also raises `last_cursor.cursor` (one row) to its highest id, so
`last_cursor()` is the highest committed cursor, pruned or not, and a watch
that starts from now misses nothing in flight.

Dedup and producers' sequences as the SQLite store: `ON CONFLICT (event_id)
DO NOTHING`, and each producer's committed sequence raised with GREATEST, in
the same transaction as its events. A batch is one INSERT from `unnest` of
one array per column, all statements of an append pipelined (one round trip
to the server), and `synchronous_commit` is on for every connection, so
`append` returns only once the server has flushed the commit.

Connections come from a pool, checked before each use: a call on a
connection the server dropped (a restart) raises `errors.Unavailable`, so
the emitter replays, and the next call gets a fresh connection. While the
server is down, calls raise the same after `POOL_TIMEOUT`.

Watches across replicas: each append also sends `NOTIFY sfmesh_events` with
this store's id; `watch_commits` LISTENs on a connection of its own and wakes
the local watchers for other replicas' commits.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence

import psycopg
from psycopg_pool import ConnectionPool
from sfmesh.v1 import eventlog_service_pb2

from services.common import errors
from services.eventlog import rows
from services.eventlog.storage import PruneNote, StoredEvent

log = logging.getLogger(__name__)

POOL_SIZE = 8
"""At most this many connections: the writer's and the reading threads'."""
POOL_TIMEOUT = 5.0
"""Seconds a call waits for a connection before it raises."""
LISTEN_RETRY = 1.0
"""Seconds between attempts to listen again after the listening connection broke."""
CHANNEL = "sfmesh_events"
"""The NOTIFY channel of appends."""
_APPEND_LOCK = 5_316_014_412
"""The advisory lock every append holds (any constant, the same in every replica)."""
_SCHEMA_LOCK = 5_316_014_413
"""The advisory lock held while the schema is created, so replicas starting together
do not race on it."""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS events (
    cursor bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    object_type text NOT NULL,
    object_uuid text NOT NULL,
    type integer NOT NULL,
    timestamp double precision NOT NULL,
    fqdn text,
    duration double precision,
    message text NOT NULL,
    extra bytea
);
CREATE TABLE IF NOT EXISTS producers (
    producer_id text PRIMARY KEY,
    committed_sequence bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS last_cursor (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    cursor bigint NOT NULL
);
INSERT INTO last_cursor (cursor) VALUES (0) ON CONFLICT DO NOTHING;
"""
    + rows.INDEXES
)

_ARRAY_TYPES = ("text", "text", "text", "integer", "float8", "text", "float8", "text", "bytea")
"""The array type of each of `rows.INSERTED`, for `unnest`."""
_INSERT = f"""
WITH inserted AS (
    INSERT INTO events ({", ".join(rows.INSERTED)})
    SELECT {", ".join(rows.INSERTED)}
    FROM unnest({", ".join(f"%s::{kind}[]" for kind in _ARRAY_TYPES)})
        WITH ORDINALITY AS batch ({", ".join(rows.INSERTED)}, position)
    ORDER BY position
    ON CONFLICT (event_id) DO NOTHING
    RETURNING cursor
)
UPDATE last_cursor SET cursor = greatest(cursor, (SELECT max(cursor) FROM inserted))
"""
_UPSERT_PRODUCER = (
    "INSERT INTO producers (producer_id, committed_sequence) VALUES (%s, %s)"
    " ON CONFLICT (producer_id) DO UPDATE SET committed_sequence ="
    " greatest(producers.committed_sequence, excluded.committed_sequence)"
    " RETURNING committed_sequence"
)
_PRUNE = (
    "WITH gone AS (DELETE FROM events WHERE type = %s AND timestamp < %s"
    " RETURNING object_type, object_uuid)"
    " SELECT object_type, object_uuid, count(*) FROM gone"
    " GROUP BY object_type, object_uuid ORDER BY object_type, object_uuid"
)
_EVENTS_SIZE = "SELECT pg_total_relation_size('events')"


def _durable(conn: psycopg.Connection) -> None:
    """Every connection waits for the server's flush at commit, whatever its default."""
    conn.execute("SET synchronous_commit = on")


class PostgresEventStore:
    """An `EventStore` in the PostgreSQL database at `url` (a libpq URL or
    connection string); creates its tables if absent."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._id = uuid.uuid4().hex
        """This store's name in its NOTIFY payloads, to tell its own commits apart."""
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        self._pool: ConnectionPool[psycopg.Connection] = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True},
            configure=_durable,
            check=ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT,
            name="eventlog",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=POOL_TIMEOUT)
            with self._connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(_SCHEMA)
        except BaseException:
            self._pool.close()
            raise

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; losing the server (or not reaching it within
        `POOL_TIMEOUT`) is `errors.Unavailable`, which callers retry."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            raise errors.Unavailable(
                f"the event database cannot be reached: {exc}", reason="EVENT_STORE_UNAVAILABLE"
            ) from exc

    # --- writes --------------------------------------------------------------------------

    def append(self, producer_id: str, records: Sequence[eventlog_service_pb2.EventRecord]) -> int:
        """Store a batch in one durable transaction, skipping event ids already stored,
        and raise the producer's committed sequence to the batch's highest."""
        if not records:
            return self.committed_sequence(producer_id)
        return self.append_batches([(producer_id, records)])[0]

    def append_batches(
        self, batches: Sequence[tuple[str, Sequence[eventlog_service_pb2.EventRecord]]]
    ) -> list[int]:
        """Store several batches in one durable transaction (group commit), after
        every other replica's earlier append (see the module docstring)."""
        inserted = [rows.record_row(record) for _, records in batches for record in records]
        columns = [list(column) for column in zip(*inserted, strict=True)] or [
            [] for _ in rows.INSERTED
        ]
        with self._connection() as conn:
            with conn.pipeline(), conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                conn.execute(_INSERT, columns)
                raised = [
                    conn.execute(
                        _UPSERT_PRODUCER,
                        (producer_id, max((record.sequence for record in records), default=0)),
                    )
                    for producer_id, records in batches
                ]
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._id))
            return [int(_one(cursor.fetchone())) for cursor in raised]

    def prune(self, now: float, retention: Mapping[int, float]) -> list[PruneNote]:
        """Delete, type by type, events older than `now - retention[type]`; one
        transaction per type. Counted from what the DELETE itself removed, so
        replicas pruning at once never report the same events twice."""
        notes: list[PruneNote] = []
        for kind, before in rows.prune_cutoffs(now, retention):
            with self._connection() as conn:
                counts = conn.execute(_PRUNE, (kind, before)).fetchall()
            notes.extend(PruneNote(ot, ou, kind, count, before) for ot, ou, count in counts)
        return notes

    # --- reads ---------------------------------------------------------------------------

    def committed_sequence(self, producer_id: str) -> int:
        """The producer's highest committed sequence; 0 if unknown."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT committed_sequence FROM producers WHERE producer_id = %s", (producer_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def _read(self, select: rows.Select | None) -> list[StoredEvent]:
        if select is None:
            return []
        with self._connection() as conn:
            found = conn.execute(select.sql, select.args).fetchall()
        return [rows.stored_event(row) for row in found]

    def newest(
        self, object_type: str, object_uuid: str, *, event_type: int = 0, limit: int = 100
    ) -> list[StoredEvent]:
        """One object's events, newest first (timestamp desc, then cursor desc)."""
        return self._read(
            rows.newest(object_type, object_uuid, event_type=event_type, limit=limit, mark="%s")
        )

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
        select = rows.after(
            object_type, object_uuid, cursor=cursor, event_type=event_type, limit=limit, mark="%s"
        )
        return self._read(select)

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
            object_type,
            object_uuid,
            timestamp=timestamp,
            event_type=event_type,
            limit=limit,
            mark="%s",
        )
        return self._read(select)

    def last_cursor(self) -> int:
        """The highest cursor committed (pruned or not); 0 for an empty store."""
        with self._connection() as conn:
            return int(_one(conn.execute("SELECT cursor FROM last_cursor").fetchone()))

    def size_bytes(self) -> int:
        """The events table's size with its indexes and TOAST data."""
        with self._connection() as conn:
            return int(_one(conn.execute(_EVENTS_SIZE).fetchone()))

    # --- other replicas ------------------------------------------------------------------

    def watch_commits(self, wake: Callable[[], None]) -> None:
        """Call `wake()`, from a thread of this store's, after each commit of another
        replica, and once whenever listening (re)starts, as commits may have been missed."""
        self._listener = threading.Thread(
            target=self._listen, args=(wake,), name="eventlog-listen", daemon=True
        )
        self._listener.start()

    def _listen(self, wake: Callable[[], None]) -> None:
        failing = False
        while not self._closing.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    failing = False
                    wake()
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=LISTEN_RETRY):
                            if note.payload != self._id:
                                wake()
            except psycopg.OperationalError as exc:
                if not failing:
                    log.warning("cannot listen for other replicas' commits, retrying: %s", exc)
                failing = True
                self._closing.wait(LISTEN_RETRY)

    def close(self) -> None:
        """Stop listening and close every connection; no call may follow."""
        self._closing.set()
        if self._listener is not None:
            self._listener.join()
        self._pool.close()


def _one(row: tuple[int] | None) -> int:
    """The value of a one-row, one-column answer."""
    if row is None:
        raise RuntimeError("the database answered no row")
    return row[0]
