"""services/node_agent/usage_counters.py: namespace counters grow by what
each domain's cumulative counters added between samples."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import REGISTRY

from services.node_agent.usage_counters import Totals, UsageCounters, grown, totals


def extra(cpu_ns: int, disk_read: int, net_write: int) -> dict[str, Any]:
    return {
        "cpu usage": {"cpu time ns": cpu_ns, "system time ns": 0, "user time ns": 0},
        "disk usage": {
            "vda": {"read bytes": disk_read, "write bytes": 10, "errors": -1},
            "vdb": {"read bytes": 1, "write bytes": -1},
        },
        "network usage": {"02:00:00:00:00:01": {"read bytes": 5, "write bytes": net_write}},
    }


def sample(name: str, namespace: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, {"namespace": namespace, **labels})
    return value or 0.0


def test_totals_sum_devices_and_skip_unknown_counters() -> None:
    assert totals(extra(2_500_000_000, 100, 7)) == Totals(2.5, 101, 10, 5, 7)


def test_a_first_sight_adds_nothing_and_a_restart_counts_from_zero() -> None:
    first = Totals(5, 5, 5, 5, 5)
    assert grown(None, first) == Totals(0, 0, 0, 0, 0)
    assert grown(first, Totals(7, 5, 6, 5, 9)) == Totals(2, 0, 1, 0, 4)
    assert grown(first, Totals(1, 5, 5, 5, 5)) == Totals(1, 0, 0, 0, 0)


def test_namespaces_grow_by_their_instances_growth() -> None:
    ours, theirs = f"ns-{uuid.uuid4().hex[:8]}", f"ns-{uuid.uuid4().hex[:8]}"
    counters = UsageCounters()
    counters.add([("a", ours, extra(1_000_000_000, 100, 50)), ("b", theirs, extra(0, 0, 0))])
    assert sample("sfmesh_usage_cpu_seconds_total", ours) == 0
    counters.add([("a", ours, extra(3_000_000_000, 400, 80)), ("b", theirs, extra(0, 0, 0))])
    assert sample("sfmesh_usage_cpu_seconds_total", ours) == 2
    assert sample("sfmesh_usage_disk_bytes_total", ours, direction="read") == 300
    assert sample("sfmesh_usage_network_bytes_total", ours, direction="write") == 30
    assert sample("sfmesh_usage_cpu_seconds_total", theirs) == 0


def test_a_domain_gone_from_a_sample_starts_over_when_seen_again() -> None:
    ours = f"ns-{uuid.uuid4().hex[:8]}"
    counters = UsageCounters()
    counters.add([("a", ours, extra(1_000_000_000, 0, 0))])
    counters.add([])
    counters.add([("a", ours, extra(9_000_000_000, 0, 0))])
    assert sample("sfmesh_usage_cpu_seconds_total", ours) == 0
