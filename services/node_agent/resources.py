"""What this node has and uses, recorded every interval (reference
guest-access §7, Shaken Fist's resources daemon): a `resources` event on
the node, whose `extra` is a flat metrics object (`sf-client node
resources` reads the newest), and the node's process metrics in etcd.

The process metrics live at `/sfmesh/v1/processmetrics/<node>`
(`ProcessMetricsRecord`), a key of their own, not in the node record:
this agent is their one writer, so the write needs no compare-and-swap
against the scheduler and the api, which share the node record, and a
sample never makes theirs retry. The key lives as long as the node
record (which stays after a delete), so a deleted node still answers its
last figures, as Shaken Fist's does.

A sample that fails (etcd away, /proc unreadable) is logged; the next
interval tries again. Events need no etcd: the emitter spools them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfmesh.v1 import event_pb2, records_pb2

from services.common.events import EventSink
from services.common.store import Put, Store, key
from services.node_agent.facts import Capacity
from services.node_agent.process_metrics import process_metrics, read_processes

log = logging.getLogger("sfmesh.node_agent.resources")

DEFAULT_INTERVAL = 300.0
"""Seconds between samples; Shaken Fist's pace."""
MESSAGE = "updated node resources"
_MIB = 1024**2


def resource_metrics(capacity: Capacity, disk: tuple[int, int, int]) -> dict[str, Any]:
    """The `extra` of a resources event: Shaken Fist's flat keys, CPUs in
    host CPUs and vCPUs, memory in MiB, disk (the state folder's `(total,
    used, free)`, as `shutil.disk_usage` answers) in bytes, and the node's
    roles as its view states them. Pure."""
    disk_total, disk_used, disk_free = disk
    return {
        "cpu_max": capacity.cpus_total,
        "cpu_max_per_instance": capacity.cpus_total,
        "cpu_total_instance_vcpus": capacity.cpus_used,
        "cpu_load_1": capacity.load_1m,
        "cpu_load_5": capacity.load_5m,
        "cpu_load_15": capacity.load_15m,
        "memory_max": capacity.memory_total_mib,
        "memory_available": capacity.memory_free_mib,
        "memory_used": capacity.memory_total_mib - capacity.memory_free_mib,
        "disk_total": disk_total,
        "disk_free": disk_free,
        "disk_used": disk_used,
        "instances_total": len(capacity.instance_uuids),
        "instances_active": capacity.instances_active,
        "is_hypervisor": True,
        "is_etcd_master": False,
        "is_network_node": False,
        "is_eventlog_node": False,
    }


def process_record(metrics: dict[str, float], now: float) -> records_pb2.ProcessMetricsRecord:
    """The etcd record of process metrics sampled at `now`. Pure."""
    record = records_pb2.ProcessMetricsRecord(recorded_at=now)
    record.metrics.update(metrics)
    return record


class Resources:
    """Records this node's resources and process metrics every interval."""

    def __init__(
        self,
        *,
        node: str,
        state_dir: Path,
        sample: Callable[[], Capacity],
        store: Store,
        emitter: EventSink,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        """`sample`: the host's capacity now (blocking; run in a thread)."""
        self._node = node
        self._state_dir = state_dir
        self._sample = sample
        self._store = store
        self._emitter = emitter
        self._interval = interval

    async def run(self) -> None:
        """Record at once, then every interval, until cancelled."""
        while True:
            try:
                await self.record()
            except Exception as exc:  # any failure: the next interval tries again
                log.warning("recording node resources failed: %r", exc)
            await asyncio.sleep(self._interval)

    async def record(self) -> None:
        """One sample: the resources event, then the process metrics."""
        capacity = await asyncio.to_thread(self._sample)
        disk = await asyncio.to_thread(shutil.disk_usage, self._state_dir)
        self._emitter.emit(
            "node",
            self._node,
            event_pb2.EVENT_TYPE_RESOURCES,
            MESSAGE,
            extra=resource_metrics(capacity, disk),
        )
        now = time.time()
        metrics = process_metrics(await asyncio.to_thread(read_processes, now))
        value = process_record(metrics, now).SerializeToString()
        await self._store.commit([Put(key("processmetrics", self._node), value)])
