"""`GET /admin/resources` (reference guest-access §8.3), built from the node
records' last reports: what each created node can still hold, and the sums.
Pure.

Only created nodes that have reported are listed (a missing or deleted
node can hold nothing). The figures are the node's own, before the
scheduler's placement policy (its overcommit ratio, the memory kept for
the host, the disk kept free): that policy is the scheduler's setting,
which the api does not hold; `docs/compatibility.md` says so.
"""

from __future__ import annotations

from collections.abc import Iterable

from sfmesh.v1 import node_service_pb2, records_pb2, scheduler_service_pb2

CREATED = node_service_pb2.NODE_STATE_CREATED


def node_resources(
    report: scheduler_service_pb2.ReportNodeRequest,
) -> node_service_pb2.NodeResources:
    """One node's resources from its last report. Pure."""
    return node_service_pb2.NodeResources(
        cpu_max_per_instance=report.cpus_total,
        cpu_available=max(report.cpus_total - report.cpus_used, 0),
        cpu_load_1=report.load_1m,
        cpu_load_5=report.load_5m,
        cpu_load_15=report.load_15m,
        ram_max_per_instance=report.memory_free_mib,
        ram_max=report.memory_total_mib,
        ram_available=report.memory_free_mib,
        disk_available=float(report.disk_free_gib),
        instances_total=len(report.instance_uuids),
        instances_active=report.instances_active,
    )


def cluster_resources(
    records: Iterable[records_pb2.NodeRecord],
) -> node_service_pb2.ClusterResources:
    """The created nodes that reported, each with its resources, and the
    sums. Pure."""
    reply = node_service_pb2.ClusterResources(total=node_service_pb2.ResourceTotals())
    for record in records:
        if record.state != CREATED or not record.HasField("last_report"):
            continue
        resources = node_resources(record.last_report)
        reply.per_node[record.name].CopyFrom(resources)
        reply.total.cpu_available += resources.cpu_available
        reply.total.ram_available += resources.ram_available
    return reply
