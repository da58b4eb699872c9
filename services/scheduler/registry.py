"""The live view of nodes: who holds a report stream, what each last reported,
the reservations placements hold on them, and which nodes are expected back
(etcd lists them as created, but they hold no stream yet). In memory and
synchronous, so a placement can decide and reserve with no await in between;
the clock is injected so tests can move time."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.scheduler.placement import NodeView


@dataclass(frozen=True)
class Capacity:
    """One report's numbers."""

    cpus_total: int
    cpus_used: int
    memory_total_mib: int
    memory_free_mib: int
    disk_free_gib: int
    load_1m: float
    instance_uuids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Reservation:
    """Resources held on a node for an instance the node has not reported yet."""

    reservation_id: str
    node: str
    instance_uuid: str
    cpus: int
    memory_mib: int
    disk_gib: int
    expires: float
    namespace: str = ""
    tags: frozenset[str] = frozenset()
    """The instance's namespace and tags, for the affinity of later placements."""


@dataclass
class _Node:
    session: int
    capacity: Capacity | None = None


class Registry:
    """Nodes with a live report stream, and the reservations held on nodes
    (kept while a node's stream is down: it may come back, or they expire)."""

    def __init__(
        self, *, reservation_ttl: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = reservation_ttl
        self._clock = clock
        self._nodes: dict[str, _Node] = {}
        self._sessions = 0
        self._held: dict[str, dict[str, Reservation]] = {}
        """Node -> reservation id -> reservation."""
        self._views: dict[str, NodeView] = {}
        """Each reported node's view, rebuilt only when it changes."""
        self._next_expiry = math.inf
        self._expected: dict[str, float] = {}
        """Node -> until when it is expected to (re)open its stream."""

    def connect(self, name: str) -> int:
        """A stream opened for `name`; returns its session. A newer stream
        replaces an older one."""
        self._sessions += 1
        self._expected.pop(name, None)
        previous = self._nodes.get(name)
        self._nodes[name] = _Node(self._sessions, previous.capacity if previous else None)
        self._refresh(name)
        return self._sessions

    def disconnect(self, name: str, session: int) -> bool:
        """The stream `session` of `name` ended; False when a newer one lives."""
        node = self._nodes.get(name)
        if node is None or node.session != session:
            return False
        del self._nodes[name]
        self._views.pop(name, None)
        return True

    def connected(self, name: str) -> bool:
        return name in self._nodes

    def expect(self, name: str, within: float) -> None:
        """`name` should open a stream within `within` seconds: it was created
        and is not connected (the scheduler or its node agent restarted)."""
        if name not in self._nodes:
            self._expected[name] = self._clock() + within

    def give_up(self, name: str) -> None:
        """`name` is not expected any more: it is gone (missing or deleted)."""
        self._expected.pop(name, None)

    def awaited(self) -> list[str]:
        """The nodes still expected to report, by name; until none is, the
        view is incomplete and a refusal may be wrong."""
        now = self._clock()
        self._expected = {name: until for name, until in self._expected.items() if until > now}
        return sorted(self._expected)

    def report(self, name: str, capacity: Capacity) -> list[str]:
        """Record a report; reservations for instances it lists are now
        counted by the node itself and are dropped. Returns their ids."""
        self._nodes[name].capacity = capacity
        held = self._held.get(name, {})
        consumed = [
            rid for rid, one in held.items() if one.instance_uuid in capacity.instance_uuids
        ]
        for rid in consumed:
            del held[rid]
        self._refresh(name)
        return consumed

    def views(self) -> list[NodeView]:
        """Every node that has reported, with its live reservations summed."""
        self._expire()
        return list(self._views.values())

    def _refresh(self, name: str) -> None:
        """Rebuild one node's view after its report or reservations changed."""
        node = self._nodes.get(name)
        if node is None or node.capacity is None:
            return
        held = self._held.get(name, {}).values()
        self._views[name] = NodeView(
            name=name,
            cpus_total=node.capacity.cpus_total,
            cpus_used=node.capacity.cpus_used,
            memory_free_mib=node.capacity.memory_free_mib,
            disk_free_gib=node.capacity.disk_free_gib,
            load_1m=node.capacity.load_1m,
            reserved_cpus=sum(r.cpus for r in held),
            reserved_memory_mib=sum(r.memory_mib for r in held),
            reserved_disk_gib=sum(r.disk_gib for r in held),
        )

    def reserve(
        self,
        node: str,
        instance_uuid: str,
        *,
        cpus: int,
        memory_mib: int,
        disk_gib: int,
        namespace: str = "",
        tags: frozenset[str] = frozenset(),
    ) -> Reservation:
        """Hold resources on a connected node until it reports the instance or
        the TTL passes."""
        held = Reservation(
            reservation_id=uuid.uuid4().hex,
            node=node,
            instance_uuid=instance_uuid,
            cpus=cpus,
            memory_mib=memory_mib,
            disk_gib=disk_gib,
            expires=self._clock() + self._ttl,
            namespace=namespace,
            tags=tags,
        )
        self.restore([held])
        return held

    def restore(self, reservations: Iterable[Reservation]) -> None:
        """Hold reservations made elsewhere (by an earlier leader), with
        their expiry on this registry's clock."""
        for held in reservations:
            self._held.setdefault(held.node, {})[held.reservation_id] = held
            self._next_expiry = min(self._next_expiry, held.expires)
            self._refresh(held.node)

    def in_flight(self, namespace: str) -> list[Reservation]:
        """The live reservations of `namespace`'s instances."""
        now = self._clock()
        return [
            held
            for node in self._held.values()
            for held in node.values()
            if held.namespace == namespace and held.expires > now
        ]

    def forget(self, instance_uuid: str) -> None:
        """Drop the reservations of an instance that is gone (deleted before
        its node reported it)."""
        for name, node in self._held.items():
            doomed = [rid for rid, held in node.items() if held.instance_uuid == instance_uuid]
            for rid in doomed:
                del node[rid]
            if doomed:
                self._refresh(name)

    def release(self, reservation_id: str) -> bool:
        """Drop a reservation; False when it is unknown or already gone."""
        for name, node in self._held.items():
            if node.pop(reservation_id, None) is not None:
                self._refresh(name)
                return True
        return False

    def clear(self) -> None:
        """Forget every reservation and expected node: another scheduler
        leads now, and holds them."""
        self._held.clear()
        self._expected.clear()
        for name in self._nodes:
            self._refresh(name)

    def _expire(self) -> None:
        now = self._clock()
        if now < self._next_expiry:
            return
        self._next_expiry = math.inf
        for name, node in self._held.items():
            live = {rid: held for rid, held in node.items() if held.expires > now}
            if len(live) != len(node):
                self._held[name] = live
                self._refresh(name)
            for held in live.values():
                self._next_expiry = min(self._next_expiry, held.expires)
