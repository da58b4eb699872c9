"""Unit tests of services/scheduler/registry.py: streams, reports, reservations."""

from __future__ import annotations

from services.scheduler.registry import Capacity, Registry, Reservation


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def capacity(*uuids: str, memory_free_mib: int = 4096) -> Capacity:
    return Capacity(
        cpus_total=4,
        cpus_used=1,
        memory_total_mib=8192,
        memory_free_mib=memory_free_mib,
        disk_free_gib=50,
        load_1m=0.5,
        instance_uuids=frozenset(uuids),
    )


def registry(clock: Clock | None = None) -> Registry:
    return Registry(reservation_ttl=120.0, clock=clock or Clock())


def test_a_node_is_viewed_once_it_reports() -> None:
    nodes = registry()
    nodes.connect("a")
    assert nodes.views() == []
    nodes.report("a", capacity())
    [view] = nodes.views()
    assert (view.name, view.cpus_total, view.cpus_used, view.memory_free_mib) == ("a", 4, 1, 4096)


def test_disconnect_removes_the_node() -> None:
    nodes = registry()
    session = nodes.connect("a")
    nodes.report("a", capacity())
    assert nodes.disconnect("a", session)
    assert not nodes.connected("a")
    assert nodes.views() == []


def test_an_old_stream_ending_leaves_the_new_one() -> None:
    nodes = registry()
    old = nodes.connect("a")
    new = nodes.connect("a")
    nodes.report("a", capacity())
    assert not nodes.disconnect("a", old)
    assert nodes.connected("a")
    assert nodes.disconnect("a", new)


def test_reservations_are_summed_into_the_view() -> None:
    nodes = registry()
    nodes.connect("a")
    nodes.report("a", capacity())
    nodes.reserve("a", "i1", cpus=2, memory_mib=512, disk_gib=10)
    nodes.reserve("a", "i2", cpus=1, memory_mib=256, disk_gib=5)
    [view] = nodes.views()
    assert (view.reserved_cpus, view.reserved_memory_mib, view.reserved_disk_gib) == (3, 768, 15)
    assert view.idle_memory_mib == 4096 - 768


def test_a_report_listing_the_instance_drops_its_reservation() -> None:
    nodes = registry()
    nodes.connect("a")
    nodes.report("a", capacity())
    nodes.reserve("a", "i1", cpus=2, memory_mib=512, disk_gib=10)
    nodes.reserve("a", "i2", cpus=1, memory_mib=256, disk_gib=5)
    nodes.report("a", capacity("i1", "other"))
    [view] = nodes.views()
    assert (view.reserved_cpus, view.reserved_memory_mib) == (1, 256)


def test_reservations_expire_after_the_ttl() -> None:
    clock = Clock()
    nodes = registry(clock)
    nodes.connect("a")
    nodes.report("a", capacity())
    nodes.reserve("a", "i1", cpus=2, memory_mib=512, disk_gib=10)
    clock.now += 119.9
    assert nodes.views()[0].reserved_cpus == 2
    clock.now += 0.2
    assert nodes.views()[0].reserved_cpus == 0


def test_release_drops_a_reservation_once() -> None:
    nodes = registry()
    nodes.connect("a")
    nodes.report("a", capacity())
    held = nodes.reserve("a", "i1", cpus=2, memory_mib=512, disk_gib=10)
    assert held.node == "a" and held.instance_uuid == "i1"
    assert nodes.release(held.reservation_id)
    assert not nodes.release(held.reservation_id)
    assert nodes.views()[0].reserved_cpus == 0


def test_reservations_survive_a_reconnect() -> None:
    nodes = registry()
    nodes.connect("a")
    nodes.report("a", capacity())
    nodes.reserve("a", "i1", cpus=2, memory_mib=512, disk_gib=10)
    nodes.connect("a")
    assert nodes.views()[0].reserved_cpus == 2


def test_in_flight_lists_a_namespaces_reservations_until_forgotten() -> None:
    clock = Clock()
    nodes = registry(clock)
    nodes.connect("a")
    nodes.report("a", capacity())
    nodes.reserve(
        "a", "i1", cpus=1, memory_mib=128, disk_gib=1, namespace="n", tags=frozenset({"db"})
    )
    nodes.reserve("a", "i2", cpus=1, memory_mib=128, disk_gib=1, namespace="other")
    assert [(r.instance_uuid, r.tags) for r in nodes.in_flight("n")] == [("i1", frozenset({"db"}))]
    nodes.forget("i1")  # deleted before its node reported it
    assert nodes.in_flight("n") == []
    [view] = nodes.views()
    assert view.reserved_cpus == 1
    clock.now += 121
    assert nodes.in_flight("other") == []  # expired


def test_an_expected_node_is_awaited_until_it_connects_or_its_time_passes() -> None:
    clock = Clock()
    nodes = registry(clock)
    nodes.expect("b", within=15)
    nodes.expect("a", within=5)
    assert nodes.awaited() == ["a", "b"]
    nodes.connect("b")
    assert nodes.awaited() == ["a"]
    clock.now += 5
    assert nodes.awaited() == []


def test_a_node_gone_missing_is_not_awaited() -> None:
    nodes = registry()
    nodes.expect("a", within=15)
    nodes.give_up("a")
    nodes.give_up("never-expected")
    assert nodes.awaited() == []


def test_a_connected_node_is_not_expected() -> None:
    nodes = registry()
    nodes.connect("a")
    nodes.expect("a", within=5)
    assert nodes.awaited() == []


def test_a_report_answers_the_reservations_it_consumed() -> None:
    nodes = registry()
    nodes.connect("a")
    nodes.report("a", capacity())
    held = nodes.reserve("a", "i1", cpus=2, memory_mib=512, disk_gib=10)
    nodes.reserve("a", "i2", cpus=1, memory_mib=256, disk_gib=5)
    assert nodes.report("a", capacity("i1")) == [held.reservation_id]
    assert nodes.report("a", capacity("i1")) == []


def test_reservations_outlive_a_lost_stream() -> None:
    nodes = registry()
    session = nodes.connect("a")
    nodes.report("a", capacity())
    nodes.reserve("a", "i1", cpus=2, memory_mib=512, disk_gib=10)
    nodes.disconnect("a", session)
    nodes.connect("a")
    nodes.report("a", capacity())
    assert nodes.views()[0].reserved_cpus == 2


def test_restored_reservations_count_once_their_node_reports() -> None:
    clock = Clock()
    nodes = registry(clock)
    held = Reservation("r1", "a", "i1", cpus=3, memory_mib=512, disk_gib=1, expires=clock.now + 5)
    nodes.restore([held])
    assert nodes.views() == []
    nodes.connect("a")
    nodes.report("a", capacity())
    assert nodes.views()[0].reserved_cpus == 3
    assert nodes.release("r1")
    assert nodes.views()[0].reserved_cpus == 0


def test_clear_forgets_reservations_and_expected_nodes() -> None:
    nodes = registry()
    nodes.connect("a")
    nodes.report("a", capacity())
    nodes.reserve("a", "i1", cpus=2, memory_mib=512, disk_gib=10)
    nodes.expect("b", within=5)
    nodes.clear()
    assert nodes.views()[0].reserved_cpus == 0
    assert nodes.awaited() == []
