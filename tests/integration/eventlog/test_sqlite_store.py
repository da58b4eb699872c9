"""Integration tests of services/eventlog/sqlite_store.py against real SQLite files."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from sfmesh.v1 import event_pb2, eventlog_service_pb2

from services.eventlog import retention
from services.eventlog.sqlite_store import SqliteEventStore, is_corruption
from services.eventlog.storage import EventStore, PruneNote, StoredEvent

STATUS = event_pb2.EVENT_TYPE_STATUS
AUDIT = event_pb2.EVENT_TYPE_AUDIT
MUTATE = event_pb2.EVENT_TYPE_MUTATE
USAGE = event_pb2.EVENT_TYPE_USAGE
DAY = 86400.0
NOW = 1_700_000_000.0


def rec(
    event_id: str,
    sequence: int = 0,
    *,
    uuid: str = "u1",
    object_type: str = "instance",
    kind: int = STATUS,
    timestamp: float = NOW,
    message: str = "",
    **fields: Any,
) -> eventlog_service_pb2.EventRecord:
    """An EventRecord with defaults for what a test does not care about."""
    return eventlog_service_pb2.EventRecord(
        event_id=event_id,
        sequence=sequence,
        object_type=object_type,
        object_uuid=uuid,
        type=kind,  # type: ignore[arg-type]
        timestamp=timestamp,
        message=message or event_id,
        **fields,
    )


def messages(found: list[StoredEvent]) -> list[str]:
    return [stored.event.message for stored in found]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "eventlog" / "events.db"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteEventStore]:
    opened = SqliteEventStore(path)
    yield opened
    opened.close()


def test_it_is_an_event_store(store: SqliteEventStore) -> None:
    typed: EventStore = store
    assert typed.last_cursor() == 0


def test_store_uses_wal_with_full_sync(store: SqliteEventStore, path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_append_skips_event_ids_already_stored(store: SqliteEventStore) -> None:
    assert store.append("p", [rec("a", 1), rec("b", 2), rec("a", 3, message="dup")]) == 3
    assert store.append("p", [rec("b", 2, message="replay"), rec("c", 4)]) == 4
    assert sorted(messages(store.newest("instance", "u1"))) == ["a", "b", "c"]


def test_committed_sequence_is_the_max_seen(store: SqliteEventStore) -> None:
    assert store.committed_sequence("p") == 0
    assert store.append("p", [rec("a", 5), rec("b", 7)]) == 7
    assert store.append("p", [rec("c", 3)]) == 7
    assert store.append("q", [rec("d", 2)]) == 2
    assert store.append("p", []) == 7
    assert store.append("new", []) == 0
    assert (store.committed_sequence("p"), store.committed_sequence("q")) == (7, 2)


def test_everything_committed_survives_a_reopen(path: Path) -> None:
    first = SqliteEventStore(path)
    first.append("p", [rec("a", 1), rec("b", 2)])
    cursor = first.last_cursor()
    first.close()
    second = SqliteEventStore(path)
    try:
        assert second.committed_sequence("p") == 2
        assert second.last_cursor() == cursor
        assert second.append("p", [rec("a", 1, message="replay"), rec("c", 3)]) == 3
        found = second.newest("instance", "u1")
        assert sorted(messages(found)) == ["a", "b", "c"]
        assert max(stored.cursor for stored in found) > cursor
    finally:
        second.close()
    assert not list(path.parent.glob("*.corrupt-*"))


def test_newest_orders_by_timestamp_then_cursor(store: SqliteEventStore) -> None:
    store.append(
        "p",
        [
            rec("t3", timestamp=NOW + 3),
            rec("t1", timestamp=NOW + 1),
            rec("t2-first", timestamp=NOW + 2),
            rec("t2-second", timestamp=NOW + 2),
            rec("other-object", uuid="u2", timestamp=NOW + 9),
            rec("other-type-of-object", object_type="network", timestamp=NOW + 9),
        ],
    )
    found = store.newest("instance", "u1")
    assert messages(found) == ["t3", "t2-second", "t2-first", "t1"]
    assert found[1].cursor > found[2].cursor


def test_newest_limits(store: SqliteEventStore) -> None:
    store.append("p", [rec(f"e{n}", timestamp=NOW + n) for n in range(150)])
    default = store.newest("instance", "u1")
    assert messages(default) == [f"e{n}" for n in range(149, 49, -1)]
    assert messages(store.newest("instance", "u1", limit=3)) == ["e149", "e148", "e147"]
    assert store.newest("instance", "u1", limit=0) == []
    assert len(store.newest("instance", "u1", limit=-1)) == 150
    assert store.newest("instance", "nobody") == []


def test_newest_filters_by_event_type(store: SqliteEventStore) -> None:
    store.append(
        "p",
        [
            rec("s1", kind=STATUS, timestamp=NOW + 1),
            rec("a1", kind=AUDIT, timestamp=NOW + 2),
            rec("s2", kind=STATUS, timestamp=NOW + 3),
        ],
    )
    assert messages(store.newest("instance", "u1", event_type=STATUS)) == ["s2", "s1"]
    assert messages(store.newest("instance", "u1", event_type=AUDIT)) == ["a1"]
    assert messages(store.newest("instance", "u1", event_type=MUTATE)) == []
    assert messages(store.newest("instance", "u1", event_type=0)) == ["s2", "a1", "s1"]


def test_after_returns_later_cursors_oldest_first(store: SqliteEventStore) -> None:
    store.append("p", [rec("a", timestamp=NOW + 5), rec("x", uuid="u2"), rec("b", kind=AUDIT)])
    start = store.last_cursor()
    store.append("p", [rec("c", timestamp=NOW - 5), rec("d", kind=AUDIT), rec("e")])
    assert messages(store.after("instance", "u1", cursor=0)) == ["a", "b", "c", "d", "e"]
    later = store.after("instance", "u1", cursor=start)
    assert messages(later) == ["c", "d", "e"]
    assert [s.cursor for s in later] == sorted(s.cursor for s in later)
    assert all(s.cursor > start for s in later)
    assert messages(store.after("instance", "u1", cursor=start, event_type=AUDIT)) == ["d"]
    assert messages(store.after("instance", "u1", cursor=0, limit=2)) == ["a", "b"]
    assert store.after("instance", "u1", cursor=store.last_cursor()) == []


def test_since_returns_from_a_time_in_cursor_order(store: SqliteEventStore) -> None:
    store.append(
        "p",
        [
            rec("late", timestamp=NOW + 10),
            rec("early", timestamp=NOW - 10),
            rec("exact", timestamp=NOW, kind=AUDIT),
            rec("middle", timestamp=NOW + 5),
        ],
    )
    assert messages(store.since("instance", "u1", timestamp=NOW)) == ["late", "exact", "middle"]
    assert messages(store.since("instance", "u1", timestamp=NOW, event_type=AUDIT)) == ["exact"]
    assert messages(store.since("instance", "u1", timestamp=NOW, limit=1)) == ["late"]
    assert store.since("instance", "u1", timestamp=NOW + 11) == []


def test_fields_round_trip(store: SqliteEventStore) -> None:
    extra = struct_pb2.Struct()
    extra.update(
        {
            "request-id": "r-1",
            "count": 10,
            "big": 12_345_678_901_234,
            "ratio": 0.25,
            "flag": True,
            "nothing": None,
            "nested": {"disk": {"vda": {"bytes": 4096}}, "list": [1, "two", {"three": 3}]},
        }
    )
    store.append(
        "p",
        [
            rec("full", timestamp=NOW + 0.125, fqdn="node1.example", duration=1.5, extra=extra),
            rec("bare", timestamp=NOW - 1),
            rec("zero", timestamp=NOW - 2, duration=0.0, extra=struct_pb2.Struct()),
        ],
    )
    full, bare, zero = (stored.event for stored in store.newest("instance", "u1"))
    assert (full.type, full.timestamp, full.fqdn, full.duration) == (
        STATUS,
        NOW + 0.125,
        "node1.example",
        1.5,
    )
    assert full.extra == extra
    back: dict[str, Any] = json_format.MessageToDict(full.extra)
    assert back["count"] == 10 and float(back["count"]).is_integer()
    assert back["big"] == 12_345_678_901_234 and float(back["big"]).is_integer()
    assert back["nested"]["disk"]["vda"]["bytes"] == 4096
    assert back["nested"]["list"] == [1, "two", {"three": 3}]
    assert (back["ratio"], back["flag"], back["nothing"]) == (0.25, True, None)
    assert not bare.HasField("fqdn")
    assert not bare.HasField("duration")
    assert not bare.HasField("extra")
    assert zero.HasField("duration") and zero.duration == 0.0
    assert zero.HasField("extra") and len(zero.extra) == 0


def test_prune_deletes_only_expired_types(store: SqliteEventStore) -> None:
    old = NOW - 10 * DAY
    store.append(
        "p",
        [
            rec("status-old-1", timestamp=old),
            rec("status-old-2", timestamp=old + 1),
            rec("status-old-u2", uuid="u2", timestamp=old),
            rec("status-new", timestamp=NOW - DAY),
            rec("audit-ancient", kind=AUDIT, timestamp=NOW - 1000 * DAY),
            rec("usage-old", kind=USAGE, timestamp=old),
            rec("mutate-ancient", kind=MUTATE, timestamp=NOW - 1000 * DAY),
        ],
    )
    table: dict[int, float] = {STATUS: 7 * DAY, AUDIT: -1.0, USAGE: 30 * DAY}
    notes = store.prune(NOW, table)
    before = NOW - 7 * DAY
    assert notes == [
        PruneNote("instance", "u1", STATUS, 2, before),
        PruneNote("instance", "u2", STATUS, 1, before),
    ]
    assert sorted(messages(store.newest("instance", "u1", limit=-1))) == [
        "audit-ancient",
        "mutate-ancient",
        "status-new",
        "usage-old",
    ]
    assert store.newest("instance", "u2") == []
    assert store.prune(NOW, table) == []


def test_prune_notes_become_prune_events_once(store: SqliteEventStore) -> None:
    store.append("p", [rec("old", timestamp=NOW - 8 * DAY)])
    notes = store.prune(NOW, retention.build_retention())
    records = retention.prune_records(notes, NOW, "log.example")
    store.append("eventlog", records)
    store.append("eventlog", retention.prune_records(notes, NOW + 60, "log.example"))
    found = store.newest("instance", "u1", limit=-1)
    assert len(found) == 1
    assert found[0].event.type == event_pb2.EVENT_TYPE_PRUNE
    assert found[0].event.message.startswith("pruned 1 events of type status from before ")


def test_cursors_are_never_reused_after_a_prune(path: Path) -> None:
    store = SqliteEventStore(path)
    store.append("p", [rec("a", timestamp=NOW - 30 * DAY), rec("b", timestamp=NOW - 30 * DAY)])
    top = store.last_cursor()
    assert store.prune(NOW, {STATUS: DAY})
    assert store.last_cursor() == top
    store.close()
    store = SqliteEventStore(path)
    try:
        store.append("p", [rec("c")])
        assert store.newest("instance", "u1")[0].cursor > top
    finally:
        store.close()


def test_reads_from_other_threads_see_committed_batches(store: SqliteEventStore) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        for n in range(20):
            store.append("p", [rec(f"e{n}", n + 1, timestamp=NOW + n)])
            seen = list(pool.map(lambda _: store.newest("instance", "u1", limit=1), range(4)))
            assert all(messages(found) == [f"e{n}"] for found in seen)
        assert pool.submit(store.committed_sequence, "p").result() == 20


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
