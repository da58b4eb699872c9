"""Unit tests of services/scheduler/placement.py: the pure filter chain."""

from __future__ import annotations

import pytest

from services.scheduler.placement import (
    NodeView,
    Placement,
    PlacementRequest,
    Policy,
    Refusal,
    RefusalKind,
    affinity_score,
    fits_disk,
    fits_idle_cpu,
    fits_memory,
    fits_vcpu_limit,
    place,
)

POLICY = Policy(cpu_overcommit_ratio=2.0, ram_reserved_mib=256, min_free_disk_gib=1)


def node(name: str = "n1", **fields: int | float) -> NodeView:
    values: dict[str, int | float] = {
        "cpus_total": 4,
        "cpus_used": 0,
        "memory_free_mib": 4096,
        "disk_free_gib": 50,
        "load_1m": 0.1,
    }
    values.update(fields)
    return NodeView(name=name, **values)  # type: ignore[arg-type]


def req(placed_on: str | None = None, **fields: int) -> PlacementRequest:
    values = {"cpus": 1, "memory_mib": 1024, "disk_gib": 10}
    values.update(fields)
    return PlacementRequest(instance_uuid="i1", placed_on=placed_on, **values)  # type: ignore[arg-type]


def placed(result: Placement | Refusal) -> Placement:
    assert isinstance(result, Placement), result
    return result


def refused(result: Placement | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_policy_defaults_are_shaken_fists() -> None:
    assert Policy() == Policy(cpu_overcommit_ratio=16, ram_reserved_mib=2048, min_free_disk_gib=20)


@pytest.mark.parametrize(("cpus", "fits"), [(4, True), (5, False)])
def test_vcpu_limit_is_host_cpus(cpus: int, fits: bool) -> None:
    assert (fits_vcpu_limit(req(cpus=cpus), node(), POLICY) is None) is fits


@pytest.mark.parametrize(
    ("used", "reserved", "cpus", "fits"),
    [(0, 0, 4, True), (7, 0, 1, True), (8, 0, 1, False), (4, 3, 1, True), (4, 4, 1, False)],
)
def test_idle_cpu_counts_used_reserved_and_overcommit(
    used: int, reserved: int, cpus: int, fits: bool
) -> None:
    view = node(cpus_used=used, reserved_cpus=reserved)
    reason = fits_idle_cpu(req(cpus=cpus), view, POLICY)
    assert (reason is None) is fits
    if not fits:
        assert reason is not None and "limit 8" in reason


@pytest.mark.parametrize(
    ("free", "reserved", "memory", "fits"),
    [
        (2048, 0, 1792, True),
        (2048, 0, 1793, False),
        (4096, 2048, 1792, True),
        (4096, 2049, 1792, False),
    ],
)
def test_memory_keeps_the_host_reservation(
    free: int, reserved: int, memory: int, fits: bool
) -> None:
    view = node(memory_free_mib=free, reserved_memory_mib=reserved)
    assert (fits_memory(req(memory_mib=memory), view, POLICY) is None) is fits


def test_memory_reason_says_how_short() -> None:
    assert fits_memory(req(memory_mib=2000), node(memory_free_mib=2048), POLICY) == (
        "short of 208 MiB"
    )


@pytest.mark.parametrize(
    ("free", "reserved", "disk", "fits"),
    [
        (11, 0, 10, True),
        (10, 0, 10, False),
        (21, 10, 10, True),
        (21, 11, 10, False),
        (1, 0, 0, True),
    ],
)
def test_disk_keeps_the_minimum_free(free: int, reserved: int, disk: int, fits: bool) -> None:
    view = node(disk_free_gib=free, reserved_disk_gib=reserved)
    assert (fits_disk(req(disk_gib=disk), view, POLICY) is None) is fits


def test_steps_follow_the_reference_order() -> None:
    result = placed(place(req(), [node("a"), node("b")], POLICY))
    assert [step.message for step in result.steps] == [
        "schedule initial candidates",
        "schedule are hypervisors",
        "schedule have enough actual cpu",
        "schedule have enough idle cpu",
        "schedule have enough idle ram",
        "schedule have enough idle disk",
        "schedule have highest affinity",
        "schedule have lowest cpu load",
        "schedule final candidates",
    ]


def test_each_step_records_survivors_and_why_others_dropped() -> None:
    nodes = [node("a"), node("b", memory_free_mib=512), node("c", disk_free_gib=2)]
    result = placed(place(req(), nodes, POLICY))
    by_message = {step.message: step for step in result.steps}
    assert by_message["schedule initial candidates"].candidates == ("a", "b", "c")
    ram = by_message["schedule have enough idle ram"]
    assert ram.candidates == ("a", "c")
    assert ram.dropped == {"b": "short of 768 MiB"}
    assert by_message["schedule have enough idle disk"].candidates == ("a",)
    assert result.node == "a"


def test_no_nodes_is_no_nodes_with_metrics() -> None:
    result = refused(place(req(), [], POLICY))
    assert result.kind is RefusalKind.INSUFFICIENT
    assert result.message == "No nodes with metrics"
    assert result.steps[-1].message == "schedule are hypervisors"
    assert result.reason == "no_nodes"


@pytest.mark.parametrize(
    ("request_", "view", "message", "stage", "reason"),
    [
        (
            req(cpus=5),
            node(),
            "Requested vCPUs exceeds vCPU limit",
            "schedule have enough actual cpu",
            "vcpu_limit",
        ),
        (
            req(cpus=2),
            node(cpus_used=7),
            "No nodes with enough idle CPU",
            "schedule have enough idle cpu",
            "idle_cpu",
        ),
        (
            req(memory_mib=8192),
            node(),
            "No nodes with enough idle RAM",
            "schedule have enough idle ram",
            "idle_ram",
        ),
        (
            req(disk_gib=50),
            node(),
            "No nodes with enough disk space",
            "schedule have enough idle disk",
            "disk",
        ),
    ],
)
def test_refusal_names_the_failing_stage(
    request_: PlacementRequest, view: NodeView, message: str, stage: str, reason: str
) -> None:
    result = refused(place(request_, [view], POLICY))
    assert result.kind is RefusalKind.INSUFFICIENT
    assert result.message == message
    assert result.steps[-1].message == stage
    assert result.steps[-1].candidates == ()
    assert result.reason == reason


def test_the_first_failing_stage_wins() -> None:
    result = refused(place(req(cpus=9, memory_mib=99999), [node()], POLICY))
    assert result.message == "Requested vCPUs exceeds vCPU limit"


def test_lowest_whole_load_wins_then_most_free_memory() -> None:
    nodes = [
        node("busy", load_1m=3.0, memory_free_mib=9000),
        node("small", load_1m=0.9, memory_free_mib=3000),
        node("big", load_1m=0.2, memory_free_mib=5000),
    ]
    result = placed(place(req(), nodes, POLICY))
    by_message = {step.message: step for step in result.steps}
    assert by_message["schedule have lowest cpu load"].candidates == ("big", "small")
    assert by_message["schedule final candidates"].candidates == ("big", "small")
    assert result.node == "big"


def test_reserved_memory_counts_in_the_tie_break() -> None:
    nodes = [node("a", memory_free_mib=5000, reserved_memory_mib=2000), node("b")]
    assert placed(place(req(), nodes, POLICY)).node == "b"


def test_ties_break_by_name() -> None:
    assert placed(place(req(), [node("z"), node("m")], POLICY)).node == "m"


def test_forced_node_is_the_only_candidate() -> None:
    nodes = [node("a", memory_free_mib=9000), node("b")]
    result = placed(place(req(placed_on="b"), nodes, POLICY))
    assert result.node == "b"
    assert result.steps[0].message == "schedule forced candidates"
    assert result.steps[0].candidates == ("b",)
    assert result.steps[1].candidates == ("b",)


def test_forced_unknown_node_is_not_found() -> None:
    result = refused(place(req(placed_on="ghost"), [node("a")], POLICY))
    assert result.kind is RefusalKind.NOT_FOUND
    assert result.message == "node not found: ghost"
    assert [step.message for step in result.steps] == ["schedule forced candidates"]
    assert result.reason == "node_not_found"


def test_forced_node_is_still_capacity_checked() -> None:
    result = refused(
        place(
            req(placed_on="a", memory_mib=8192),
            [node("a"), node("b", memory_free_mib=99999)],
            POLICY,
        )
    )
    assert result.message == "No nodes with enough idle RAM"


def test_place_is_pure() -> None:
    nodes = [node("a"), node("b", load_1m=2.0)]
    assert place(req(), nodes, POLICY) == place(req(), nodes, POLICY)


@pytest.mark.parametrize(
    ("affinity", "winner"),
    [
        ({}, "a"),  # no affinity: every score is 0, the load decides
        ({"web": 10}, "b"),
        ({"web": -10}, "a"),
        ({"web": 10, "db": -20}, "b"),  # c carries both: 10 - 20 < 0
        ({"db": 5}, "c"),
    ],
)
def test_affinity_keeps_the_best_scored_nodes(affinity: dict[str, int], winner: str) -> None:
    nodes = [node("a"), node("b"), node("c")]
    neighbours = {"b": [frozenset({"web"})], "c": [frozenset({"web", "db"}), frozenset()]}
    request = PlacementRequest("i1", 1, 1024, 10, affinity=affinity)
    result = placed(place(request, nodes, Policy(), neighbours))
    assert result.node == winner


def test_affinity_score_sums_weights_over_neighbours() -> None:
    neighbours = [frozenset({"web", "db"}), frozenset({"web"}), frozenset({"cache"})]
    assert affinity_score({"web": 3, "db": -1, "none": 100}, neighbours) == 5
    assert affinity_score({}, neighbours) == 0
