"""Integration tests of what only the SQLite store does, on real files: WAL with
full sync, and a damaged file set aside. What both stores do is test_stores.py's."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2

from services.eventlog.sqlite_store import SqliteEventStore, is_corruption
from tests.event_records import messages, rec


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "eventlog" / "events.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteEventStore]:
    opened = SqliteEventStore(path)
    yield opened
    opened.close()


def test_store_uses_wal_with_full_sync(store: SqliteEventStore, path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_sound_file_is_not_set_aside(path: Path) -> None:
    SqliteEventStore(path).close()
    store = SqliteEventStore(path)
    store.close()
    assert not list(path.parent.glob("*.corrupt-*"))


def _assert_set_aside_and_fresh(path: Path, original: bytes, caplog: Any) -> None:
    asides = sorted(path.parent.glob(f"{path.name}.corrupt-*"))
    main = [aside for aside in asides if not aside.name.endswith(("-wal", "-shm"))]
    assert len(main) == 1
    assert main[0].read_bytes()[: len(original)] == original
    assert "corrupt" in caplog.text
    store = SqliteEventStore(path)
    try:
        assert store.last_cursor() == 0
        assert store.append("p", [rec("fresh", 1)]) == 1
        assert messages(store.newest("instance", "u1")) == ["fresh"]
    finally:
        store.close()


def test_a_garbage_file_is_set_aside(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path.parent.mkdir(parents=True)
    garbage = b"this is not an sqlite database\x00\xff" * 200
    path.write_bytes(garbage)
    Path(f"{path}-wal").write_bytes(b"stale wal")
    with caplog.at_level(logging.WARNING):
        SqliteEventStore(path).close()
    (aside,) = (p for p in path.parent.glob("*.corrupt-*") if p.name.endswith(tuple("0123456789")))
    assert Path(f"{aside}-wal").read_bytes() == b"stale wal"
    _assert_set_aside_and_fresh(path, garbage[:4096], caplog)


def test_a_truncated_file_is_set_aside(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteEventStore(path)
    payload = struct_pb2.Struct()
    payload.update({"padding": "x" * 200})
    store.append("p", [rec(f"e{n}", n, uuid=f"u{n % 30}", extra=payload) for n in range(3000)])
    store.close()
    size = path.stat().st_size
    assert size > 64 * 4096
    os.truncate(path, size // 2)
    with caplog.at_level(logging.WARNING):
        SqliteEventStore(path).close()
    _assert_set_aside_and_fresh(path, b"SQLite format 3\x00", caplog)


def test_a_page_damaged_mid_way_fails_the_quick_check(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteEventStore(path)
    store.append("p", [rec(f"e{n}", n, uuid=f"u{n % 30}", message="x" * 200) for n in range(3000)])
    store.close()
    middle = path.stat().st_size // 4096 // 2
    with path.open("r+b") as file:
        # Bytes 1-2 of a b-tree page header: the first freeblock's offset. SQLite opens the
        # file and reads its schema happily; only the quick_check notices.
        file.seek(middle * 4096 + 1)
        file.write(b"\xff\xff")
    with caplog.at_level(logging.WARNING):
        SqliteEventStore(path).close()
    assert "quick_check" in caplog.text
    _assert_set_aside_and_fresh(path, b"SQLite format 3\x00", caplog)


def test_a_locked_file_is_not_set_aside(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = SqliteEventStore(path)
    first.append("p", [rec("kept", 1)])
    first.close()
    connect = sqlite3.connect

    def impatient(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, **{**kwargs, "timeout": 0.05})

    monkeypatch.setattr(sqlite3, "connect", impatient)
    blocker = connect(path, isolation_level=None)
    blocker.execute("PRAGMA locking_mode = EXCLUSIVE")
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked") as raised:
            SqliteEventStore(path)
        assert not is_corruption(raised.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    monkeypatch.undo()
    assert not list(path.parent.glob("*.corrupt-*"))
    store = SqliteEventStore(path)
    try:
        assert messages(store.newest("instance", "u1")) == ["kept"]
    finally:
        store.close()
