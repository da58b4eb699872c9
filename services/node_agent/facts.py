"""What the node agent knows about its host: pure parsers of /proc texts and
the virtualisation choice, plus thin readers that feed them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sfmesh.v1 import instance_pb2

VIRT_TYPES = ("auto", "kvm", "qemu")
"""Accepted values of the virtualisation setting."""

_HARDWARE_FLAGS = frozenset({"vmx", "svm"})
_KIB_PER_MIB = 1024
_BYTES_PER_GIB = 1024**3
_POWERED_ON = instance_pb2.POWER_STATE_ON


@dataclass(frozen=True)
class HostFacts:
    """Static facts about a hypervisor, sent in the first report of a stream."""

    node: str
    """The node's name."""
    address: str
    """The node agent's gRPC address, host:port, as others should dial it."""
    kvm: bool
    """Whether instances run under hardware KVM (else TCG)."""
    libvirt_version: str = ""
    """The libvirt version; empty until libvirt is wired in."""
    underlay_address: str = ""
    """Where other nodes send this node's VXLAN traffic; empty: nowhere."""


@dataclass(frozen=True)
class Capacity:
    """One sample of what the host has and uses."""

    cpus_total: int
    cpus_used: int
    """vCPUs given to instances."""
    memory_total_mib: int
    memory_free_mib: int
    """Memory available to new instances (MemAvailable)."""
    disk_free_gib: int
    """Free space where instance disks live."""
    load_1m: float
    instance_uuids: tuple[str, ...] = field(default=())
    load_5m: float = 0.0
    load_15m: float = 0.0
    instances_active: int = 0
    """Of the instances placed here, those powered on."""


# Pure parsing and decisions.


def parse_meminfo(text: str) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in MiB from a /proc/meminfo text. Falls back to
    MemFree when MemAvailable is missing (kernels before 3.14). Pure."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name.strip()] = int(parts[0])
    if "MemTotal" not in values:
        raise ValueError("no MemTotal in meminfo")
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return values["MemTotal"] // _KIB_PER_MIB, available // _KIB_PER_MIB


def parse_cpuinfo_flags(text: str) -> bool:
    """Whether a /proc/cpuinfo text shows hardware virtualisation (vmx or svm). Pure."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "flags" and _HARDWARE_FLAGS & set(rest.split()):
            return True
    return False


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages from a /proc/loadavg text. Pure."""
    parts = text.split()
    if len(parts) < 3:
        raise ValueError(f"loadavg has no three averages: {text!r}")
    return float(parts[0]), float(parts[1]), float(parts[2])


def choose_virt_type(dev_kvm_exists: bool, has_vmx_svm: bool, forced: str | None) -> str:
    """The virtualisation type, "kvm" or "qemu" (TCG). `/dev/kvm` alone is no
    proof of hardware KVM (a paravirtual module may provide it), so auto needs
    the CPU flag too; `forced` ("kvm"/"qemu") overrides, None or "auto"
    decides. Pure."""
    if forced in (None, "", "auto"):
        return "kvm" if dev_kvm_exists and has_vmx_svm else "qemu"
    if forced in ("kvm", "qemu"):
        return forced
    raise ValueError(f"unknown virt type {forced!r}; expected one of {', '.join(VIRT_TYPES)}")


# Thin readers of this host.


def read_virt_type(forced: str | None) -> str:
    """The virtualisation type for this host."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    return choose_virt_type(Path("/dev/kvm").exists(), parse_cpuinfo_flags(cpuinfo), forced)


def instances_dir(state_dir: Path) -> Path:
    """Where instance disks live."""
    return state_dir / "instances"


def read_capacity(state_dir: Path, hosted: Sequence[instance_pb2.Instance]) -> Capacity:
    """Sample this host's capacity now, with the instances placed here."""
    total_mib, free_mib = parse_meminfo(Path("/proc/meminfo").read_text())
    load_1m, load_5m, load_15m = parse_loadavg(Path("/proc/loadavg").read_text())
    return Capacity(
        cpus_total=os.cpu_count() or 1,
        cpus_used=sum(instance.cpus for instance in hosted),
        memory_total_mib=total_mib,
        memory_free_mib=free_mib,
        disk_free_gib=shutil.disk_usage(instances_dir(state_dir)).free // _BYTES_PER_GIB,
        load_1m=load_1m,
        instance_uuids=tuple(instance.uuid for instance in hosted),
        load_5m=load_5m,
        load_15m=load_15m,
        instances_active=sum(instance.power_state == _POWERED_ON for instance in hosted),
    )
