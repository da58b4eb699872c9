"""Integration tests of the eventlog's stores, each run on both: a SQLite file
and a PostgreSQL database (`stores.open_store` picks by location)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from sfmesh.v1 import event_pb2

from services.eventlog import retention
from services.eventlog.storage import EventStore, PruneNote
from services.eventlog.stores import open_store
from tests.event_records import NOW, messages, rec

STATUS = event_pb2.EVENT_TYPE_STATUS
AUDIT = event_pb2.EVENT_TYPE_AUDIT
MUTATE = event_pb2.EVENT_TYPE_MUTATE
USAGE = event_pb2.EVENT_TYPE_USAGE
DAY = 86400.0

Opener = Callable[[], EventStore]
"""Opens the test's store again: the same file or database each call."""


@pytest.fixture(params=["sqlite", "postgres"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """A new, empty store of each backend for the test."""
    if request.param == "sqlite":
        location = str(tmp_path / "eventlog" / "events.db")
    else:
        location = request.getfixturevalue("postgres").create_database(f"events_{uuid.uuid4().hex}")
    return lambda: open_store(location)


@pytest.fixture
def store(reopen: Opener) -> Iterator[EventStore]:
    opened = reopen()
    yield opened
    opened.close()


def test_a_new_store_is_empty(store: EventStore) -> None:
    assert store.last_cursor() == 0
    assert store.committed_sequence("p") == 0


def test_append_skips_event_ids_already_stored(store: EventStore) -> None:
    assert store.append("p", [rec("a", 1), rec("b", 2), rec("a", 3, message="dup")]) == 3
    assert store.append("p", [rec("b", 2, message="replay"), rec("c", 4)]) == 4
    assert sorted(messages(store.newest("instance", "u1"))) == ["a", "b", "c"]


def test_committed_sequence_is_the_max_seen(store: EventStore) -> None:
    assert store.committed_sequence("p") == 0
    assert store.append("p", [rec("a", 5), rec("b", 7)]) == 7
    assert store.append("p", [rec("c", 3)]) == 7
    assert store.append("q", [rec("d", 2)]) == 2
    assert store.append("p", []) == 7
    assert store.append("new", []) == 0
    assert (store.committed_sequence("p"), store.committed_sequence("q")) == (7, 2)


def test_everything_committed_survives_a_reopen(reopen: Opener) -> None:
    first = reopen()
    first.append("p", [rec("a", 1), rec("b", 2)])
    cursor = first.last_cursor()
    first.close()
    second = reopen()
    try:
        assert second.committed_sequence("p") == 2
        assert second.last_cursor() == cursor
        assert second.append("p", [rec("a", 1, message="replay"), rec("c", 3)]) == 3
        found = second.newest("instance", "u1")
        assert sorted(messages(found)) == ["a", "b", "c"]
        assert max(stored.cursor for stored in found) > cursor
    finally:
        second.close()


def test_newest_orders_by_timestamp_then_cursor(store: EventStore) -> None:
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


def test_newest_limits(store: EventStore) -> None:
    store.append("p", [rec(f"e{n}", timestamp=NOW + n) for n in range(150)])
    default = store.newest("instance", "u1")
    assert messages(default) == [f"e{n}" for n in range(149, 49, -1)]
    assert messages(store.newest("instance", "u1", limit=3)) == ["e149", "e148", "e147"]
    assert store.newest("instance", "u1", limit=0) == []
    assert len(store.newest("instance", "u1", limit=-1)) == 150
    assert store.newest("instance", "nobody") == []


def test_newest_filters_by_event_type(store: EventStore) -> None:
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


def test_after_returns_later_cursors_oldest_first(store: EventStore) -> None:
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


def test_since_returns_from_a_time_in_cursor_order(store: EventStore) -> None:
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


def test_fields_round_trip(store: EventStore) -> None:
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


def test_prune_deletes_only_expired_types(store: EventStore) -> None:
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


def test_prune_notes_become_prune_events_once(store: EventStore) -> None:
    store.append("p", [rec("old", timestamp=NOW - 8 * DAY)])
    notes = store.prune(NOW, retention.build_retention())
    records = retention.prune_records(notes, NOW, "log.example")
    store.append("eventlog", records)
    store.append("eventlog", retention.prune_records(notes, NOW + 60, "log.example"))
    found = store.newest("instance", "u1", limit=-1)
    assert len(found) == 1
    assert found[0].event.type == event_pb2.EVENT_TYPE_PRUNE
    assert found[0].event.message.startswith("pruned 1 events of type status from before ")


def test_cursors_are_never_reused_after_a_prune(reopen: Opener) -> None:
    store = reopen()
    store.append("p", [rec("a", timestamp=NOW - 30 * DAY), rec("b", timestamp=NOW - 30 * DAY)])
    top = store.last_cursor()
    assert store.prune(NOW, {STATUS: DAY})
    assert store.last_cursor() == top
    store.close()
    store = reopen()
    try:
        store.append("p", [rec("c")])
        assert store.newest("instance", "u1")[0].cursor > top
    finally:
        store.close()


def test_reads_from_other_threads_see_committed_batches(store: EventStore) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        for n in range(20):
            store.append("p", [rec(f"e{n}", n + 1, timestamp=NOW + n)])
            seen = list(pool.map(lambda _: store.newest("instance", "u1", limit=1), range(4)))
            assert all(messages(found) == [f"e{n}"] for found in seen)
        assert pool.submit(store.committed_sequence, "p").result() == 20


def test_size_grows_with_what_is_stored(store: EventStore) -> None:
    empty = store.size_bytes()
    store.append("p", [rec(f"e{n}", n, message="x" * 200) for n in range(1, 1001)])
    assert store.size_bytes() > empty
