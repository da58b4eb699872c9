"""services/api/nodes/resources.py: GET /admin/resources from node records."""

from __future__ import annotations

from sfmesh.v1 import node_service_pb2, records_pb2, scheduler_service_pb2

from services.api.nodes.resources import cluster_resources

CREATED = node_service_pb2.NODE_STATE_CREATED
MISSING = node_service_pb2.NODE_STATE_MISSING


def record(
    name: str, state: node_service_pb2.NodeState, *, reported: bool = True, cpus_used: int = 1
) -> records_pb2.NodeRecord:
    node = records_pb2.NodeRecord(name=name, state=state)
    if reported:
        node.last_report.CopyFrom(
            scheduler_service_pb2.ReportNodeRequest(
                cpus_total=4,
                cpus_used=cpus_used,
                memory_total_mib=8000,
                memory_free_mib=5000,
                disk_free_gib=30,
                load_1m=0.5,
                load_5m=0.25,
                load_15m=0.125,
                instance_uuids=["a", "b"],
                instances_active=1,
            )
        )
    return node


def test_each_created_node_that_reported_is_listed_with_its_figures() -> None:
    reply = cluster_resources([record("hv-1", CREATED)])
    assert list(reply.per_node) == ["hv-1"]
    assert reply.per_node["hv-1"] == node_service_pb2.NodeResources(
        cpu_max_per_instance=4,
        cpu_available=3,
        cpu_load_1=0.5,
        cpu_load_5=0.25,
        cpu_load_15=0.125,
        ram_max_per_instance=5000,
        ram_max=8000,
        ram_available=5000,
        disk_available=30.0,
        instances_total=2,
        instances_active=1,
    )


def test_only_created_nodes_that_reported_count() -> None:
    reply = cluster_resources(
        [
            record("hv-1", CREATED),
            record("hv-2", CREATED, cpus_used=0),
            record("gone", MISSING),
            record("quiet", CREATED, reported=False),
        ]
    )
    assert sorted(reply.per_node) == ["hv-1", "hv-2"]
    assert (reply.total.cpu_available, reply.total.ram_available) == (7, 10000)


def test_no_node_gives_zero_totals() -> None:
    reply = cluster_resources([])
    assert reply.HasField("total") and not reply.per_node
    assert (reply.total.cpu_available, reply.total.ram_available) == (0, 0)


def test_overcommitted_cpus_leave_none_available() -> None:
    reply = cluster_resources([record("hv-1", CREATED, cpus_used=9)])
    assert reply.per_node["hv-1"].cpu_available == 0


def test_figures_are_in_the_leading_schedulers_terms() -> None:
    policy = records_pb2.SchedulerPolicyRecord(
        cpu_overcommit_ratio=1.5, ram_reserved_mib=1000, min_free_disk_gib=50
    )
    reply = cluster_resources([record("hv-1", CREATED, cpus_used=2)], policy)
    resources = reply.per_node["hv-1"]
    assert resources.cpu_available == 4  # floor(4 x 1.5) - 2
    assert resources.cpu_max_per_instance == 4
    assert (resources.ram_available, resources.ram_max_per_instance) == (4000, 4000)
    assert resources.disk_available == 0  # 30 free, 50 kept: nothing, never below
    assert (reply.total.cpu_available, reply.total.ram_available) == (4, 4000)
