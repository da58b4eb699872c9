"""Which `EventStore` a `--database` value names: a `postgresql://` (or
`postgres://`) URL is a PostgreSQL database several replicas may share;
anything else is the path of this replica's SQLite file."""

from __future__ import annotations

from pathlib import Path

from services.eventlog.postgres_store import PostgresEventStore
from services.eventlog.sqlite_store import SqliteEventStore
from services.eventlog.storage import EventStore

URL_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(database: str) -> bool:
    """Whether `database` names a PostgreSQL database rather than a file. Pure."""
    return database.startswith(URL_SCHEMES)


def open_store(database: str) -> EventStore:
    """The store `database` names, opened (a SQLite file and its folder are
    made if missing; PostgreSQL tables too)."""
    if is_database_url(database):
        return PostgresEventStore(database)
    return SqliteEventStore(Path(database))
