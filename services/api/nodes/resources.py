"""`GET /admin/resources` (reference guest-access §8.3), built from the node
records' last reports: what each created node can still hold, and the sums.
Pure.

Only created nodes that have reported are listed (a missing or deleted
node can hold nothing). The figures are in the leading scheduler's terms,
as Shaken Fist's are: vCPUs after its overcommit ratio, RAM less what it
keeps for the host, disk less what it keeps free (the policy it published,
`services/common/scheduler_policy.py`). Before any scheduler has led there
is no policy, and they are the node's own. Placements still reserved but
not yet reported by their node are not subtracted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sfmesh.v1 import node_service_pb2, records_pb2, scheduler_service_pb2

CREATED = node_service_pb2.NODE_STATE_CREATED


NO_POLICY = records_pb2.SchedulerPolicyRecord(cpu_overcommit_ratio=1.0)
"""The node's own figures: no overcommit, nothing kept back."""


def node_resources(
    report: scheduler_service_pb2.ReportNodeRequest,
    policy: records_pb2.SchedulerPolicyRecord = NO_POLICY,
) -> node_service_pb2.NodeResources:
    """One node's resources from its last report, under `policy`. Pure."""
    vcpus = math.floor(report.cpus_total * policy.cpu_overcommit_ratio)
    ram = max(report.memory_free_mib - policy.ram_reserved_mib, 0)
    return node_service_pb2.NodeResources(
        cpu_max_per_instance=report.cpus_total,
        cpu_available=max(vcpus - report.cpus_used, 0),
        cpu_load_1=report.load_1m,
        cpu_load_5=report.load_5m,
        cpu_load_15=report.load_15m,
        ram_max_per_instance=ram,
        ram_max=report.memory_total_mib,
        ram_available=ram,
        disk_available=float(max(report.disk_free_gib - policy.min_free_disk_gib, 0)),
        instances_total=len(report.instance_uuids),
        instances_active=report.instances_active,
    )


def cluster_resources(
    records: Iterable[records_pb2.NodeRecord],
    policy: records_pb2.SchedulerPolicyRecord | None = None,
) -> node_service_pb2.ClusterResources:
    """The created nodes that reported, each with its resources under
    `policy` (None: none published), and the sums. Pure."""
    reply = node_service_pb2.ClusterResources(total=node_service_pb2.ResourceTotals())
    for record in records:
        if record.state != CREATED or not record.HasField("last_report"):
            continue
        resources = node_resources(record.last_report, policy or NO_POLICY)
        reply.per_node[record.name].CopyFrom(resources)
        reply.total.cpu_available += resources.cpu_available
        reply.total.ram_available += resources.ram_available
    return reply
