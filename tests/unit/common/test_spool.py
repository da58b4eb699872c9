"""services/common/spool.py: segments on a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfmesh.v1 import eventlog_service_pb2

from services.common.spool import (
    SUFFIX,
    Dropped,
    Entry,
    Spool,
    SpoolLockedError,
    frame,
    read_records,
)


def entry(sequence: int, message: str = "") -> Entry:
    record = eventlog_service_pb2.EventRecord(
        event_id=f"id-{sequence}", sequence=sequence, message=message or f"event {sequence}"
    )
    return Entry(sequence, record.SerializeToString())


def segments(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob(f"*{SUFFIX}"))


def reopened(directory: Path, **options: int) -> tuple[Spool, list[Entry]]:
    spool = Spool(directory, **options)
    return spool, spool.load()


def test_round_trip(tmp_path: Path) -> None:
    spool, loaded = reopened(tmp_path)
    assert loaded == []
    written = [entry(sequence) for sequence in range(1, 101)]
    for item in written:
        spool.append(item)
    spool.close()

    again, loaded = reopened(tmp_path)
    assert loaded == written
    record = eventlog_service_pb2.EventRecord.FromString(loaded[41].payload)
    assert (record.event_id, record.sequence, record.message) == ("id-42", 42, "event 42")
    again.close()


def test_append_writes_nothing_until_flush(tmp_path: Path) -> None:
    spool, _ = reopened(tmp_path)
    spool.append(entry(7))
    assert segments(tmp_path) == []
    assert spool.size_bytes == len(frame(entry(7).payload))
    spool.flush()
    assert segments(tmp_path) == [f"{7:020d}{SUFFIX}"]
    assert (tmp_path / segments(tmp_path)[0]).read_bytes() == frame(entry(7).payload)
    spool.close()


def test_rotation_by_count_and_by_size(tmp_path: Path) -> None:
    spool, _ = reopened(tmp_path / "count", segment_events=3)
    for sequence in range(1, 11):
        spool.append(entry(sequence))
    spool.flush()
    assert segments(tmp_path / "count") == [f"{first:020d}{SUFFIX}" for first in (1, 4, 7, 10)]
    spool.close()

    size = len(frame(entry(1).payload))
    spool, _ = reopened(tmp_path / "size", segment_bytes=2 * size)
    for sequence in range(1, 6):
        spool.append(entry(sequence))
    spool.flush()
    assert spool.segment_count == 3
    spool.close()


def test_acknowledge_deletes_whole_segments(tmp_path: Path) -> None:
    spool, _ = reopened(tmp_path, segment_events=3)
    for sequence in range(1, 11):
        spool.append(entry(sequence))
    spool.flush()

    spool.acknowledge(5)  # segment 4-6 is only partly acknowledged: it stays
    assert segments(tmp_path) == [f"{first:020d}{SUFFIX}" for first in (4, 7, 10)]
    spool.acknowledge(9)
    assert segments(tmp_path) == [f"{10:020d}{SUFFIX}"]
    spool.acknowledge(10)  # the segment being written goes too
    assert segments(tmp_path) == []
    assert spool.size_bytes == 0

    spool.append(entry(11))
    spool.close()
    again, loaded = reopened(tmp_path)
    assert loaded == [entry(11)]
    again.close()


def test_acknowledged_before_flush_never_touches_disk(tmp_path: Path) -> None:
    spool, _ = reopened(tmp_path)
    for sequence in range(1, 4):
        spool.append(entry(sequence))
    spool.acknowledge(3)
    spool.flush()
    assert segments(tmp_path) == []
    spool.close()


def test_truncated_tail_is_ignored(tmp_path: Path) -> None:
    spool, _ = reopened(tmp_path)
    for sequence in range(1, 4):
        spool.append(entry(sequence))
    spool.close()
    (path,) = tmp_path.glob(f"*{SUFFIX}")
    torn = frame(entry(4).payload)
    for cut in (2, 4, len(torn) - 1):  # inside the length prefix, at its end, mid-payload
        path.write_bytes(b"".join(frame(entry(s).payload) for s in range(1, 4)) + torn[:cut])
        again, loaded = reopened(tmp_path)
        assert [item.sequence for item in loaded] == [1, 2, 3]
        again.close()


def test_zero_filled_tail_is_ignored() -> None:
    data = frame(entry(1).payload) + b"\x00" * 64
    entries, ignored = read_records(data)
    assert entries == [entry(1)]
    assert ignored == 64


def test_reload_after_reopen_continues(tmp_path: Path) -> None:
    spool, _ = reopened(tmp_path, segment_events=4)
    for sequence in range(1, 7):
        spool.append(entry(sequence))
    spool.close()

    spool, loaded = reopened(tmp_path, segment_events=4)
    assert [item.sequence for item in loaded] == [1, 2, 3, 4, 5, 6]
    for sequence in range(7, 10):
        spool.append(entry(sequence))
    spool.acknowledge(4)  # the first segment of the first run
    spool.close()

    spool, loaded = reopened(tmp_path, segment_events=4)
    assert [item.sequence for item in loaded] == [5, 6, 7, 8, 9]
    spool.acknowledge(6)  # the loaded segments are forgotten once covered
    assert spool.segment_count == 1
    spool.close()


def test_empty_segment_is_removed_on_load(tmp_path: Path) -> None:
    (tmp_path / f"{5:020d}{SUFFIX}").write_bytes(b"\x00\x00")
    spool, loaded = reopened(tmp_path)
    assert loaded == []
    assert segments(tmp_path) == []
    spool.close()


def test_trim_drops_oldest_segments(tmp_path: Path) -> None:
    spool, _ = reopened(tmp_path, segment_events=2)
    for sequence in range(1, 9):
        spool.append(entry(sequence))
    size = len(frame(entry(1).payload))
    assert spool.trim(8 * size) is None
    assert spool.trim(5 * size) == Dropped(events=4, last_sequence=4)
    assert spool.size_bytes == 4 * size
    spool.close()
    again, loaded = reopened(tmp_path)
    assert [item.sequence for item in loaded] == [5, 6, 7, 8]
    again.close()


def test_one_process_per_folder(tmp_path: Path) -> None:
    spool, _ = reopened(tmp_path)
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path).load()
    spool.close()
    again, _ = reopened(tmp_path)
    again.close()
