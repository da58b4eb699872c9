"""Usage per namespace as Prometheus counters, for dashboards (the `usage`
events stay what billing reads): vCPU seconds, disk and network bytes of a
namespace's instances on this node, from the usage samples' cumulative
libvirt counters (`usage.py`).

A domain counts from the second sample a node agent takes of it (the first
only sets its baseline, so a restarted agent adds nothing twice); a counter
that went down means the domain started again, and counts from zero. The
label is the namespace: bounded by the tenants, never an instance."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from prometheus_client import Counter

CPU_SECONDS = Counter(
    "sfmesh_usage_cpu_seconds",
    "vCPU time used by a namespace's instances on this node",
    ["namespace"],
)
DISK_BYTES = Counter(
    "sfmesh_usage_disk_bytes",
    "Bytes a namespace's instances on this node read from and wrote to their disks",
    ["namespace", "direction"],
)
NETWORK_BYTES = Counter(
    "sfmesh_usage_network_bytes",
    "Bytes a namespace's instances on this node received (read) and sent (write)",
    ["namespace", "direction"],
)


class Totals(NamedTuple):
    """One domain's cumulative counters in one sample."""

    cpu_seconds: float
    disk_read: float
    disk_write: float
    network_read: float
    network_write: float


def totals(extra: Mapping[str, Any]) -> Totals:
    """A `usage` event's extra summed over devices; unknown counters (-1)
    count as 0. Pure."""

    def summed(group: str, key: str) -> float:
        return float(sum(max(device.get(key, 0), 0) for device in extra[group].values()))

    return Totals(
        max(extra["cpu usage"]["cpu time ns"], 0) / 1e9,
        summed("disk usage", "read bytes"),
        summed("disk usage", "write bytes"),
        summed("network usage", "read bytes"),
        summed("network usage", "write bytes"),
    )


def grown(before: Totals | None, now: Totals) -> Totals:
    """What each counter added since `before`: nothing on a first sight, all
    of it after a restart (a counter below its last value). Pure."""
    if before is None:
        return Totals(0, 0, 0, 0, 0)
    return Totals(*(n - b if n >= b else n for n, b in zip(now, before, strict=True)))


class UsageCounters:
    """Adds each sample's growth to the namespace counters."""

    def __init__(self) -> None:
        self._last: dict[str, Totals] = {}

    def add(self, samples: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
        """Count one sample: (instance uuid, namespace, usage extra) for each
        domain sampled; domains absent from it are forgotten."""
        last, self._last = self._last, {}
        for uuid, namespace, extra in samples:
            now = self._last[uuid] = totals(extra)
            added = grown(last.get(uuid), now)
            CPU_SECONDS.labels(namespace).inc(added.cpu_seconds)
            DISK_BYTES.labels(namespace, "read").inc(added.disk_read)
            DISK_BYTES.labels(namespace, "write").inc(added.disk_write)
            NETWORK_BYTES.labels(namespace, "read").inc(added.network_read)
            NETWORK_BYTES.labels(namespace, "write").inc(added.network_write)
