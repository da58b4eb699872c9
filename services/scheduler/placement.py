"""Placement as a pure filter chain (reference §6.2): every step keeps the
nodes that fit and records the survivors and why the others were dropped, so
a refusal names its stage. No grpc, no etcd, no clock: the servicer gathers
the node views (reservations already counted) and acts on the outcome."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class Policy:
    """Placement thresholds; Shaken Fist's defaults."""

    cpu_overcommit_ratio: float = 16.0
    """vCPUs given to instances may reach host CPUs times this."""
    ram_reserved_mib: int = 2048
    """Memory kept free for the host, MiB."""
    min_free_disk_gib: int = 20
    """Disk kept free for the host, GiB."""


@dataclass(frozen=True)
class PlacementRequest:
    """What an instance needs."""

    instance_uuid: str
    cpus: int
    memory_mib: int
    disk_gib: int
    placed_on: str | None = None
    """A forced node, when any."""
    affinity: Mapping[str, int] = field(default_factory=dict)
    """Tag -> weight: attract (positive) or repel (negative) the instances
    of the same namespace carrying the tag."""


@dataclass(frozen=True)
class NodeView:
    """One schedulable node: its last report plus what is reserved on it."""

    name: str
    cpus_total: int
    cpus_used: int
    memory_free_mib: int
    disk_free_gib: int
    load_1m: float
    reserved_cpus: int = 0
    reserved_memory_mib: int = 0
    reserved_disk_gib: int = 0

    @property
    def idle_memory_mib(self) -> int:
        """Memory free once reservations are taken out."""
        return self.memory_free_mib - self.reserved_memory_mib


@dataclass(frozen=True)
class Step:
    """One step of the chain: its audit message and who survived it."""

    message: str
    candidates: tuple[str, ...]
    dropped: Mapping[str, str] = field(default_factory=dict)
    """Node name -> why this step dropped it."""


class RefusalKind(Enum):
    NOT_FOUND = "not_found"
    """The forced node is not schedulable (404)."""
    INSUFFICIENT = "insufficient"
    """No node fits (507)."""


@dataclass(frozen=True)
class Placement:
    node: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    message: str
    steps: tuple[Step, ...]
    reason: str
    """Which step refused, one of REFUSAL_REASONS (a metric's label)."""


Check = Callable[[PlacementRequest, NodeView, Policy], "str | None"]


def fits_vcpu_limit(request: PlacementRequest, node: NodeView, policy: Policy) -> str | None:
    """One instance may not have more vCPUs than the host has CPUs."""
    if request.cpus > node.cpus_total:
        return f"{request.cpus} vCPUs > {node.cpus_total} host CPUs"
    return None


def fits_idle_cpu(request: PlacementRequest, node: NodeView, policy: Policy) -> str | None:
    """vCPUs in use, reserved and requested within the overcommit limit."""
    limit = node.cpus_total * policy.cpu_overcommit_ratio
    wanted = node.cpus_used + node.reserved_cpus + request.cpus
    if wanted > limit:
        return f"{wanted} vCPUs > limit {limit:g}"
    return None


def fits_memory(request: PlacementRequest, node: NodeView, policy: Policy) -> str | None:
    """Free memory, less reservations and the host's share, covers the request."""
    left = node.idle_memory_mib - policy.ram_reserved_mib - request.memory_mib
    if left < 0:
        return f"short of {-left} MiB"
    return None


def fits_disk(request: PlacementRequest, node: NodeView, policy: Policy) -> str | None:
    """Free disk, less reservations and the minimum kept free, covers the request."""
    left = node.disk_free_gib - node.reserved_disk_gib - policy.min_free_disk_gib - request.disk_gib
    if left < 0:
        return f"short of {-left} GiB"
    return None


FILTERS: tuple[tuple[str, Check, str, str], ...] = (
    (
        "schedule have enough actual cpu",
        fits_vcpu_limit,
        "Requested vCPUs exceeds vCPU limit",
        "vcpu_limit",
    ),
    ("schedule have enough idle cpu", fits_idle_cpu, "No nodes with enough idle CPU", "idle_cpu"),
    ("schedule have enough idle ram", fits_memory, "No nodes with enough idle RAM", "idle_ram"),
    ("schedule have enough idle disk", fits_disk, "No nodes with enough disk space", "disk"),
)
"""(audit message, check, refusal message and reason when nothing survives), in order."""

NODE_NOT_FOUND = "node_not_found"
NO_NODES = "no_nodes"
REFUSAL_REASONS = (NODE_NOT_FOUND, NO_NODES, *(reason for *_, reason in FILTERS))
"""Every `Refusal.reason`."""


def affinity_score(affinity: Mapping[str, int], neighbours: Iterable[Collection[str]]) -> int:
    """A node's score (reference §6.3): for each instance of the same
    namespace on it, the weights of the affinity tags it carries."""
    return sum(weight for tags in neighbours for tag, weight in affinity.items() if tag in tags)


def place(
    request: PlacementRequest,
    nodes: Sequence[NodeView],
    policy: Policy,
    neighbours: Mapping[str, Sequence[Collection[str]]] | None = None,
) -> Placement | Refusal:
    """Run the chain over the schedulable `nodes`; the first survivor after the
    tie-breaks (lowest whole load, then most idle memory, then name) wins.
    `neighbours` holds, per node, the tag sets of the instances of the
    request's namespace placed there (only needed with an affinity)."""
    steps: list[Step] = []
    by_name = {node.name: node for node in nodes}
    if request.placed_on is not None:
        steps.append(Step("schedule forced candidates", (request.placed_on,)))
        if request.placed_on not in by_name:
            return Refusal(
                RefusalKind.NOT_FOUND,
                f"node not found: {request.placed_on}",
                tuple(steps),
                NODE_NOT_FOUND,
            )
        candidates = [by_name[request.placed_on]]
    else:
        candidates = sorted(nodes, key=lambda node: node.name)
    steps.append(Step("schedule initial candidates", _names(candidates)))
    # Every node holding a report stream is a hypervisor.
    steps.append(Step("schedule are hypervisors", _names(candidates)))
    if not candidates:
        return Refusal(RefusalKind.INSUFFICIENT, "No nodes with metrics", tuple(steps), NO_NODES)
    for message, check, refusal, reason in FILTERS:
        kept, dropped = [], {}
        for node in candidates:
            why = check(request, node, policy)
            if why is None:
                kept.append(node)
            else:
                dropped[node.name] = why
        candidates = kept
        steps.append(Step(message, _names(candidates), dropped))
        if not candidates:
            return Refusal(RefusalKind.INSUFFICIENT, refusal, tuple(steps), reason)
    scores = {
        node.name: affinity_score(request.affinity, (neighbours or {}).get(node.name, ()))
        for node in candidates
    }
    best = max(scores.values())
    affinity_dropped = {
        name: f"affinity {score} < {best}" for name, score in scores.items() if score < best
    }
    candidates = [node for node in candidates if scores[node.name] == best]
    steps.append(Step("schedule have highest affinity", _names(candidates), affinity_dropped))
    lowest = min(math.floor(node.load_1m) for node in candidates)
    candidates = [node for node in candidates if math.floor(node.load_1m) == lowest]
    steps.append(Step("schedule have lowest cpu load", _names(candidates)))
    candidates.sort(key=lambda node: (-node.idle_memory_mib, node.name))
    steps.append(Step("schedule final candidates", _names(candidates)))
    return Placement(candidates[0].name, tuple(steps))


def _names(nodes: Sequence[NodeView]) -> tuple[str, ...]:
    return tuple(node.name for node in nodes)
