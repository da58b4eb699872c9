"""services/node_agent/resources.py's pure parts: a resources event's
`extra` and the process-metrics record."""

from __future__ import annotations

from services.node_agent.facts import Capacity
from services.node_agent.resources import process_record, resource_metrics

CAPACITY = Capacity(
    cpus_total=8,
    cpus_used=3,
    memory_total_mib=16000,
    memory_free_mib=6000,
    disk_free_gib=40,
    load_1m=0.5,
    instance_uuids=("a", "b", "c"),
    load_5m=0.25,
    load_15m=0.125,
    instances_active=2,
)


def test_a_resources_event_carries_shaken_fists_flat_keys() -> None:
    extra = resource_metrics(CAPACITY, (100, 30, 70))
    assert extra == {
        "cpu_max": 8,
        "cpu_max_per_instance": 8,
        "cpu_total_instance_vcpus": 3,
        "cpu_load_1": 0.5,
        "cpu_load_5": 0.25,
        "cpu_load_15": 0.125,
        "memory_max": 16000,
        "memory_available": 6000,
        "memory_used": 10000,
        "disk_total": 100,
        "disk_free": 70,
        "disk_used": 30,
        "instances_total": 3,
        "instances_active": 2,
        "is_hypervisor": True,
        "is_etcd_master": False,
        "is_network_node": False,
        "is_eventlog_node": False,
    }


def test_the_process_record_keeps_the_metrics_and_when() -> None:
    record = process_record({"process_age_etcd": 90.0}, 1234.5)
    assert dict(record.metrics) == {"process_age_etcd": 90.0}
    assert record.recorded_at == 1234.5
