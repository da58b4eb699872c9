"""Usage events (reference §7.1, §7.3 step 15): every `--usage-interval`
seconds the node agent reads the counters of its running and paused domains
in one libvirt bulk call (`Hypervisor.usage_stats`) and records a `usage`
event on each of those instances, its extra in Shaken Fist's shape:

    {"cpu usage": {"cpu time ns", "system time ns", "user time ns"},
     "disk usage": {<device>: {"read requests", "read bytes", "write requests",
                               "write bytes", "errors", "actual bytes on disk"}},
     "network usage": {<mac>: {"read bytes", "read packets", "read errors",
                               "read drops", "write bytes", "write packets",
                               "write errors", "write drops"}}}

- Counters are libvirt's, cumulative since the domain started (a power
  cycle starts them from 0 again), as Shaken Fist's are. A stopped
  instance has no domain running and gets no event.
- A counter libvirt does not report is -1: `errors` always under QEMU,
  as the per-domain call Shaken Fist makes answers. `actual bytes on disk` is the
  host space the image file takes (libvirt's `physical`: allocated blocks).
- Devices are named as the guest sees them: the instance record's disk
  names, in the domain's disk order (an NVMe disk is `vdX` to libvirt).
- Network counters are the guest's view (`read` = received by the guest).
  libvirt reports them under the tap's name (`vnetN`); it gives a bridge's
  tap the guest's MAC with its first octet 0xfe (so the bridge never takes
  the guest's address), so the tap's MAC, read from sysfs, finds the NIC
  among the record's by its other five octets. A tap matching none (gone
  between the two reads) is left out.

Each sample also grows the per-namespace Prometheus counters of
`usage_counters.py`. A sample that fails (libvirtd away) is logged and the next one is taken
an interval later; it never stops the agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sfmesh.v1 import event_pb2

from services.common.events import EventSink
from services.common.instance_store import StoredInstance
from services.node_agent.hypervisor import Hypervisor, HypervisorError
from services.node_agent.usage_counters import UsageCounters

log = logging.getLogger("sfmesh.node_agent")

DEFAULT_INTERVAL = 60.0
"""Seconds between two samples: Shaken Fist's `USAGE_EVENT_FREQUENCY`."""
UNKNOWN = -1
"""A counter libvirt does not report (QEMU keeps no block error count)."""
SYSFS_NET = Path("/sys/class/net")

_CPU = {"cpu time ns": "time", "system time ns": "system", "user time ns": "user"}
_DISK = {
    "read requests": "rd.reqs",
    "read bytes": "rd.bytes",
    "write requests": "wr.reqs",
    "write bytes": "wr.bytes",
    "errors": "errs",
    "actual bytes on disk": "physical",
}
_NET = {
    "read bytes": "rx.bytes",
    "read packets": "rx.pkts",
    "read errors": "rx.errs",
    "read drops": "rx.drop",
    "write bytes": "tx.bytes",
    "write packets": "tx.pkts",
    "write errors": "tx.errs",
    "write drops": "tx.drop",
}
"""Shaken Fist's key -> libvirt's bulk stats field (after `cpu.`, `block.N.`
or `net.N.`)."""


def usage_extra(
    stats: Mapping[str, Any], devices: Sequence[str], macs: Mapping[str, str]
) -> dict[str, Any]:
    """A `usage` event's extra from one domain's bulk stats; `devices` are the
    record's disk names in order, `macs` the guest MAC of each tap. Pure."""
    disks = _indexed(stats, "block")
    names = devices if len(devices) == len(disks) else [d.get("name", "") for d in disks]
    return {
        "cpu usage": {key: stats.get(f"cpu.{field}", UNKNOWN) for key, field in _CPU.items()},
        "disk usage": {
            name: {key: disk.get(field, UNKNOWN) for key, field in _DISK.items()}
            for name, disk in zip(names, disks, strict=True)
        },
        "network usage": {
            macs[nic["name"]]: {key: nic.get(field, UNKNOWN) for key, field in _NET.items()}
            for nic in _indexed(stats, "net")
            if nic.get("name") in macs
        },
    }


def taps(stats: Mapping[str, Any]) -> list[str]:
    """The tap devices a domain's bulk stats name. Pure."""
    return [nic["name"] for nic in _indexed(stats, "net") if "name" in nic]


def guest_mac(tap_mac: str, macs: Iterable[str]) -> str | None:
    """The one of `macs` whose tap has MAC `tap_mac` (equal past the first
    octet); None when none is. Pure."""
    tail = tap_mac.lower()[2:]
    return next((mac for mac in macs if mac.lower()[2:] == tail), None)


def _indexed(stats: Mapping[str, Any], group: str) -> list[dict[str, Any]]:
    """`block.0.rd.bytes`… as one dict per device, in libvirt's order."""
    prefix = f"{group}."
    devices: list[dict[str, Any]] = [{} for _ in range(int(stats.get(f"{prefix}count", 0)))]
    for key, value in stats.items():
        index, _, field = key.removeprefix(prefix).partition(".")
        if key.startswith(prefix) and field and index.isdigit() and int(index) < len(devices):
            devices[int(index)][field] = value
    return devices


def read_tap_macs(names: Iterable[str], root: Path = SYSFS_NET) -> dict[str, str]:
    """Each tap's own MAC from sysfs; a tap gone meanwhile is left out."""
    found = {}
    for name in names:
        if "/" in name or name.startswith("."):
            continue
        try:
            found[name] = (root / name / "address").read_text().strip()
        except OSError:
            continue
    return found


class UsageSampler:
    """The node agent's usage events: `run` samples every `interval` seconds."""

    def __init__(
        self,
        *,
        hypervisor: Hypervisor,
        lookup: Callable[[str], StoredInstance | None],
        events: EventSink,
        interval: float,
    ) -> None:
        self._hypervisor = hypervisor
        self._lookup = lookup
        self._events = events
        self._interval = interval
        self._counters = UsageCounters()

    async def run(self) -> None:
        """Sample every interval until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sample()
            except HypervisorError as exc:
                log.warning("usage sample failed, next in %.0f s: %s", self._interval, exc)

    async def sample(self) -> int:
        """Record a `usage` event for each running or paused instance placed
        here; answers how many."""
        domains = await self._hypervisor.usage_stats()
        tap_macs = await asyncio.to_thread(
            read_tap_macs, [tap for stats in domains.values() for tap in taps(stats)]
        )
        sampled = []
        for uuid, stats in sorted(domains.items()):
            stored = self._lookup(uuid)
            if stored is None:  # a leftover being torn down
                continue
            instance = stored.record.instance
            nics = [nic.macaddr for nic in instance.interfaces]
            macs = {
                tap: mac
                for tap in taps(stats)
                if tap in tap_macs and (mac := guest_mac(tap_macs[tap], nics)) is not None
            }
            extra = usage_extra(stats, [disk.device for disk in instance.disks], macs)
            self._events.emit("instance", uuid, event_pb2.EVENT_TYPE_USAGE, "usage", extra=extra)
            sampled.append((uuid, instance.namespace, extra))
        self._counters.add(sampled)
        return len(sampled)
