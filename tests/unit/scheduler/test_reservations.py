"""Unit tests of services/scheduler/reservations.py: a reservation's
stored form, and its expiry carried from one scheduler's clock to another's."""

from __future__ import annotations

from services.scheduler.registry import Reservation
from services.scheduler.reservations import from_record, to_record

HELD = Reservation(
    reservation_id="r1",
    node="n1",
    instance_uuid="i1",
    cpus=2,
    memory_mib=1024,
    disk_gib=10,
    expires=500.0,
    namespace="ns",
    tags=frozenset({"web", "db"}),
)


def test_the_record_carries_the_expiry_as_epoch_time() -> None:
    record = to_record(HELD, remaining=90.0, now=1_000_000.0)
    assert (record.node, record.instance_uuid, record.namespace) == ("n1", "i1", "ns")
    assert (record.cpus, record.memory_mib, record.disk_gib) == (2, 1024, 10)
    assert list(record.tags) == ["db", "web"]
    assert record.expires_at == 1_000_090.0


def test_a_new_leader_reads_it_back_on_its_own_clock() -> None:
    record = to_record(HELD, remaining=90.0, now=1_000_000.0)
    # Read 30 s later by a scheduler whose clock reads 7 then.
    back = from_record("r1", record, now=1_000_030.0, clock=7.0)
    assert back == Reservation(
        reservation_id="r1",
        node="n1",
        instance_uuid="i1",
        cpus=2,
        memory_mib=1024,
        disk_gib=10,
        expires=67.0,
        namespace="ns",
        tags=frozenset({"web", "db"}),
    )
