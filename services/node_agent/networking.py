"""Instance NICs on this node: before a domain starts, the data plane of
each network it uses is made ready (`dataplane.py`), with NAT behind an
egress address of this node when the network provides it, DHCP pins the
NIC's address to its MAC and NAT maps floated NICs' floating addresses; once
the last instance here leaves a network, its data plane here goes too.

A network made ready is made whole again only every REFRESH seconds (which
also repairs what was removed under it); in between, only changed pins and
floats are written. One change at a time per network, so two instances of a
new network never make it twice, and none joins one being taken down."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from sfmesh.v1 import event_pb2, instance_pb2, records_pb2

from services.common import errors
from services.common import instance_states as states
from services.common.events import EventSink
from services.common.store import Store, key, kind_prefix
from services.node_agent.commands import DataPlaneError
from services.node_agent.dataplane import DataPlane, NetworkPlan, NoNat, names
from services.node_agent.egress import EgressAddresses

log = logging.getLogger("sfmesh.node_agent.networking")

REFRESH = 60.0
STATUS = event_pb2.EVENT_TYPE_STATUS


class NetworkGone(Exception):
    """An instance's network record no longer exists."""


class InstanceNetworking:
    """Attaches and detaches this node's instances to their networks."""

    def __init__(
        self,
        store: Store,
        dataplane: DataPlane,
        hosted: Callable[[], list[instance_pb2.Instance]],
        events: EventSink,
        egress: EgressAddresses | None = None,
    ) -> None:
        """Without `egress`, networks that provide NAT get none here."""
        self._events = events
        self._store = store
        self._dataplane = dataplane
        self._hosted = hosted
        self._egress = egress
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._plans: dict[str, NetworkPlan] = {}  # networks with pieces here
        self._ready: dict[str, float] = {}  # those made whole, and when
        self._served: dict[str, dict[str, str]] = {}  # the pins each one serves
        self._floated: dict[str, dict[str, str]] = {}  # the floats each one maps
        self._joined: dict[str, tuple[int, set[str]]] = {}
        """instance uuid -> the record revision it was last attached at, and
        the networks it was attached to."""

    async def attach(self, instance: instance_pb2.Instance, *, revision: int = 0) -> dict[str, str]:
        """Make every network of `instance` ready here, with its pins and
        floats; returns network uuid -> the bridge its NICs join. Given the
        record `revision` the instance was read at, a network it was attached
        to at an older revision and has no NIC on any more (a hot-plugged NIC
        withdrawn) is served without it, or taken down when no instance here
        uses it; a copy older than the last one attached (a follower lagging
        behind a plug) leaves nothing."""
        bridges = {}
        using = {nic.network_uuid for nic in instance.interfaces}
        seen, joined = self._joined.get(instance.uuid, (0, set()))
        self._joined[instance.uuid] = (seen, joined | using)
        if revision and revision >= seen:
            for network_uuid in sorted(joined - using):
                await self._leave(network_uuid, instance)
            self._joined[instance.uuid] = (revision, using)
        for network_uuid in sorted(using):
            async with self._locks[network_uuid]:
                instances = self._live(also=instance)
                pins, floats = _pins(network_uuid, instances), _floats(network_uuid, instances)
                made = self._ready.get(network_uuid)
                if made is None or time.monotonic() - made > REFRESH:
                    await self._make_ready(network_uuid, floats)
                plan = self._plans[network_uuid]
                await self._serve(plan, pins, floats)
            bridges[network_uuid] = names(self._dataplane.node, plan.vxlan_id).bridge
        return bridges

    async def detach(self, instance_uuid: str, used: Iterable[str] = ()) -> None:
        """`instance_uuid` left this node: drop its pins and floats, and the
        data plane of every network no instance here uses any more. `used`
        names the networks it was on, which this process may not know (it
        restarted since they were made here)."""
        self._joined.pop(instance_uuid, None)
        for network_uuid in sorted({*self._plans, *used}):
            async with self._locks[network_uuid]:
                plan = self._plans.get(network_uuid) or await self._carried(network_uuid)
                if plan is None:  # taken down meanwhile, or never here
                    continue
                await self._serve_or_take_down(plan, self._live(without=instance_uuid))

    async def _leave(self, network_uuid: str, instance: instance_pb2.Instance) -> None:
        """`instance` (as given) has no NIC on a network it was attached
        to: serve the network without it, or take it down."""
        async with self._locks[network_uuid]:
            plan = self._plans.get(network_uuid)
            if plan is not None:
                await self._serve_or_take_down(plan, self._live(also=instance))

    async def _serve_or_take_down(
        self, plan: NetworkPlan, instances: list[instance_pb2.Instance]
    ) -> None:
        """Serve exactly the pins and floats of `instances` on the network,
        or take it down when none of them has a NIC on it."""
        if any(nic.network_uuid == plan.uuid for i in instances for nic in i.interfaces):
            await self._serve(plan, _pins(plan.uuid, instances), _floats(plan.uuid, instances))
        else:
            await self._take_down(plan)

    async def sweep(self) -> None:
        """After a restart: take down what this node still carries of every
        network none of its instances uses (deleted, or moved away, while the
        agent was down), and give back egress addresses none needs."""
        used = {nic.network_uuid for i in self._live() for nic in i.interfaces}
        async for item in self._store.list_prefix(kind_prefix("network")):
            network = records_pb2.NetworkRecord.FromString(item.value).network
            if network.uuid in used or not await self._dataplane.has(network.vxlan_id):
                continue
            async with self._locks[network.uuid]:
                if network.uuid not in {n.network_uuid for i in self._live() for n in i.interfaces}:
                    await self._take_down(await self._plan(network.uuid))
        if self._egress is not None:
            used = {nic.network_uuid for i in self._live() for nic in i.interfaces}
            await self._egress.release_all_but(lambda net: net in used or net in self._plans)

    async def _take_down(self, plan: NetworkPlan) -> None:
        # Forgotten first: should the removal fail half-way, the next user
        # makes the network whole again rather than trusting a stale "ready".
        self._ready.pop(plan.uuid, None)
        self._served.pop(plan.uuid, None)
        self._floated.pop(plan.uuid, None)
        await self._dataplane.remove(plan)
        if plan.provide_nat and self._egress is not None:
            await self._egress.release(plan.uuid)
        del self._plans[plan.uuid]
        self._status(plan.uuid, "removed network from hypervisor")

    async def _carried(self, network_uuid: str) -> NetworkPlan | None:
        """The plan of a network this process has not made, if this node
        carries it."""
        try:
            plan = await self._plan(network_uuid)
        except NetworkGone:
            return None
        if await self._dataplane.has(plan.vxlan_id):
            return plan
        del self._plans[network_uuid]
        return None

    async def _make_ready(self, network_uuid: str, floats: dict[str, str]) -> None:
        plan = await self._plan(network_uuid)
        egress_address = None
        if plan.provide_nat and self._egress is not None:
            try:
                egress_address = await self._egress.hold(network_uuid)
            except errors.InsufficientResources as exc:
                raise DataPlaneError(f"no egress address for NAT: {exc.message}") from exc
        elif plan.provide_nat:
            log.warning("this node has no egress: network %s gets no NAT here", network_uuid)
        first = not await self._dataplane.has(plan.vxlan_id)
        await self._dataplane.ensure(plan, egress_address, floats)
        if first:
            extra = {"egress_address": egress_address} if egress_address else {}
            self._status(network_uuid, "created network on hypervisor", extra)
        self._ready[network_uuid] = time.monotonic()
        self._floated[network_uuid] = floats if egress_address else {}

    async def _serve(self, plan: NetworkPlan, pins: dict[str, str], floats: dict[str, str]) -> None:
        if self._served.get(plan.uuid) != pins:
            await self._dataplane.set_hosts(plan, pins)
            self._served[plan.uuid] = pins
        if self._floated.get(plan.uuid, {}) != floats:
            try:
                await self._dataplane.set_floats(plan, floats)
            except NoNat as exc:  # a setting, not a retry, fixes this
                log.warning("cannot map floating addresses: %s", exc)
            self._floated[plan.uuid] = floats

    def _status(self, network_uuid: str, message: str, extra: dict[str, str] | None = None) -> None:
        node = self._dataplane.node
        self._events.emit(
            "network", network_uuid, STATUS, message, extra={"node": node, **(extra or {})}
        )

    async def _plan(self, network_uuid: str) -> NetworkPlan:
        item = await self._store.get(key("network", network_uuid))
        if item is None:
            raise NetworkGone(f"network {network_uuid} does not exist")
        network = records_pb2.NetworkRecord.FromString(item.value).network
        plan = NetworkPlan(
            uuid=network.uuid,
            vxlan_id=network.vxlan_id,
            netblock=network.netblock,
            provide_dhcp=network.provide_dhcp,
            provide_nat=network.provide_nat,
        )
        self._plans[network_uuid] = plan
        return plan

    def _live(
        self, *, also: instance_pb2.Instance | None = None, without: str = ""
    ) -> list[instance_pb2.Instance]:
        """The instances here that hold their NICs: `also` as given, not `without`."""
        live = [
            instance
            for instance in self._hosted()
            if instance.uuid not in (without, also.uuid if also else "")
            and instance.state not in (states.DELETED, states.ERROR)
        ]
        return [*live, also] if also is not None else live


def _pins(network_uuid: str, instances: list[instance_pb2.Instance]) -> dict[str, str]:
    """MAC -> address of every NIC with an address on the network. Pure."""
    return {
        nic.macaddr: nic.ipv4
        for instance in instances
        for nic in instance.interfaces
        if nic.network_uuid == network_uuid and nic.HasField("ipv4")
    }


def _floats(network_uuid: str, instances: list[instance_pb2.Instance]) -> dict[str, str]:
    """Floating address -> address of every floated NIC on the network. Pure."""
    return {
        nic.floating: nic.ipv4
        for instance in instances
        for nic in instance.interfaces
        if nic.network_uuid == network_uuid and nic.HasField("floating") and nic.HasField("ipv4")
    }
