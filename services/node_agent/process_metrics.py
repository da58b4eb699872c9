"""The mesh's processes on this host, as `GET /nodes/{node}/processmetrics`
answers them (reference guest-access §7): per process, the CPU seconds it
used, its age in seconds and their ratio, under names whose
non-alphanumerics became `_` (`process_cpu_fraction_sfmesh_node_agent`).

A mesh process is `python -m services.<service>` (named
`sfmesh-<service>`), `python -m launcher` (`sfmesh-launcher`) or etcd.
Processes younger than MIN_AGE are left out, as Shaken Fist leaves them:
start-up makes a young process's ratio look like a CPU hog's. When several
processes share a name (two node agents on one host), each name gets its
pid. Pure rules, then one psutil reader.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psutil

MIN_AGE = 60.0
"""Seconds a process must have run before it is measured."""
_MODULE = re.compile(r"^(services\.[a-z_]+|launcher)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9]")


@dataclass(frozen=True)
class ProcessSample:
    """One process as psutil saw it."""

    name: str
    """Its mesh name, e.g. `sfmesh-node_agent`."""
    pid: int
    cpu_seconds: float
    """User and system CPU time so far."""
    age_seconds: float


def mesh_name(cmdline: Sequence[str], name: str) -> str | None:
    """The mesh name of a process from its command line and executable
    name; None when it is not one of the mesh's. Pure."""
    if name == "etcd":
        return "etcd"
    for flag, module in itertools.pairwise(cmdline):
        if flag == "-m" and _MODULE.match(module):
            return "sfmesh-" + module.removeprefix("services.")
    return None


def process_metrics(samples: Iterable[ProcessSample]) -> dict[str, float]:
    """The flat metrics object of `samples`, those younger than MIN_AGE
    left out. Pure."""
    measured = [sample for sample in samples if sample.age_seconds >= MIN_AGE]
    shared = Counter(sample.name for sample in measured)
    metrics: dict[str, float] = {}
    for sample in measured:
        name = sample.name if shared[sample.name] == 1 else f"{sample.name}-{sample.pid}"
        safe = _UNSAFE.sub("_", name)
        metrics[f"process_cpu_time_{safe}"] = sample.cpu_seconds
        metrics[f"process_age_{safe}"] = sample.age_seconds
        metrics[f"process_cpu_fraction_{safe}"] = sample.cpu_seconds / sample.age_seconds
    return metrics


def read_processes(now: float) -> list[ProcessSample]:
    """The mesh's processes on this host at `now` (epoch seconds). Blocking."""
    samples = []
    for process in psutil.process_iter(["pid", "name", "cmdline", "cpu_times", "create_time"]):
        info = process.info
        name = mesh_name(info["cmdline"] or (), info["name"] or "")
        if name is None or info["cpu_times"] is None or info["create_time"] is None:
            continue  # not ours, or gone (or unreadable) while listed
        samples.append(
            ProcessSample(
                name=name,
                pid=info["pid"],
                cpu_seconds=info["cpu_times"].user + info["cpu_times"].system,
                age_seconds=max(now - info["create_time"], 0.0),
            )
        )
    return samples
