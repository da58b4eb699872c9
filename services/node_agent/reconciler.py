"""Turns what etcd asks of this node into what libvirt runs.

Each instance converges on its own task, one at a time: a change seen while
it converges makes it converge again afterwards. Every state written is a
compare-and-swap that first checks the state it expects, so a delete (or any
write by the api) that lands meanwhile wins, and the next pass acts on it.
Every step is idempotent, which is what makes a restart in the middle of a
create safe: the resync after it walks the instance on from where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Set
from typing import Any

from sfmesh.v1 import event_pb2, instance_pb2, node_agent_service_pb2, records_pb2

from services.common import errors, tracing
from services.common import instance_states as states
from services.common.events import EventSink
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.wire import wire_name
from services.node_agent import metrics
from services.node_agent.blob_records import BlobRecords
from services.node_agent.builder import Builder, BuildError
from services.node_agent.commands import DataPlaneError
from services.node_agent.domain_xml import graphics_port_clash
from services.node_agent.fetch_outcome import BlobUnusable
from services.node_agent.graphics_ports import GraphicsPorts, NoFreePort, cleared
from services.node_agent.hotplug import Hotplug
from services.node_agent.hypervisor import Hypervisor, HypervisorError
from services.node_agent.networking import InstanceNetworking, NetworkGone

log = logging.getLogger("sfmesh.node_agent")

Power = instance_pb2.PowerState
POWER_ON = node_agent_service_pb2.POWER_OPERATION_POWER_ON
RETRY_SECONDS = 5.0
"""Wait before converging again an instance whose pass failed."""
PORT_MOVES = 3
"""Times a start whose console port was taken moves it and tries again."""
BUILDING = frozenset({states.INITIAL, states.PREFLIGHT, states.CREATING})
FAILING: dict[int, int] = {
    states.INITIAL: states.INITIAL_ERROR,
    states.PREFLIGHT: states.PREFLIGHT_ERROR,
    states.CREATING: states.CREATING_ERROR,
    states.CREATED: states.CREATED_ERROR,
}
"""The transitional error state of each state a failure can strike in."""
FAILED = frozenset(
    {
        states.INITIAL_ERROR,
        states.PREFLIGHT_ERROR,
        states.CREATING_ERROR,
        states.CREATED_ERROR,
        states.DELETE_WAIT_ERROR,
    }
)


class Stopwatch:
    """Seconds spent in named stages, each a span of the trace being served:
    `with stopwatch("images"): ...`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            with tracing.span(stage):
                yield
        finally:
            self.seconds[stage] = time.perf_counter() - started


class Superseded(Exception):
    """The record moved on while this pass worked; the next pass takes over."""


class Reconciler:
    """Converges every instance placed on this node."""

    def __init__(
        self,
        *,
        records: InstanceStore,
        blobs: BlobRecords,
        lookup: Callable[[str], StoredInstance | None],
        builder: Builder,
        networking: InstanceNetworking,
        hypervisor: Hypervisor,
        hotplug: Hotplug,
        emitter: EventSink,
        graphics: GraphicsPorts,
    ) -> None:
        self._graphics = graphics
        self._hotplug = hotplug
        self._records = records
        self._blobs = blobs
        self._lookup = lookup
        self._builder = builder
        self._networking = networking
        self._hypervisor = hypervisor
        self._emitter = emitter
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._power_locks: dict[str, asyncio.Lock] = {}

    def changed(self, uuid: str) -> None:
        """An instance's record changed (or was first seen): converge it."""
        if uuid in self._running:
            self._again.add(uuid)
            return
        task = asyncio.create_task(self._converge_until_settled(uuid), name=f"converge-{uuid}")
        self._running[uuid] = task
        metrics.QUEUE_DEPTH.inc()

    def observed(self, uuid: str, power: instance_pb2.PowerState) -> None:
        """libvirt says the domain's power state changed: converge, which
        reads libvirt's state then, so the latest state is the one written."""
        self.changed(uuid)

    def power_guard(self, uuid: str) -> asyncio.Lock:
        """Held from reading (or changing) a domain's power in libvirt until
        the record shows it, so a reading taken before a power change can
        never be written after that change's own."""
        return self._power_locks.setdefault(uuid, asyncio.Lock())

    async def record_power(self, uuid: str, power: instance_pb2.PowerState) -> None:
        """Write an observed power state unless the record already says it."""

        def set_power(record: records_pb2.InstanceRecord) -> None:
            # Only a created instance's power follows libvirt (a create sets
            # its own, a delete ends in off); and an unchanged one is not
            # written again.
            if record.instance.state != states.CREATED or record.instance.power_state == power:
                raise Superseded
            record.instance.power_state = power

        stored = self._lookup(uuid)  # possibly stale: the update re-reads on conflict
        if stored is None:
            return
        with contextlib.suppress(Superseded, errors.SfmeshError):
            await self._records.update(stored, set_power)

    async def close(self) -> None:
        """Stop converging (a restart resumes where this left off)."""
        for handle in self._retries.values():
            handle.cancel()
        metrics.QUEUE_DEPTH.dec(len(self._retries))
        self._retries.clear()
        for task in list(self._running.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _converge_until_settled(self, uuid: str) -> None:
        try:
            while True:
                self._again.discard(uuid)
                try:
                    await self._converge(uuid)
                except Superseded:
                    pass
                except Exception:  # etcd or libvirt away: one instance never stops the others
                    log.exception("converging failed", extra={"fields": {"instance": uuid}})
                    self._retry_later(uuid)
                if uuid not in self._again:
                    return
        finally:
            self._running.pop(uuid, None)
            metrics.QUEUE_DEPTH.dec()

    def _retry_later(self, uuid: str) -> None:
        """Converge again after a while: nothing else may ever poke it."""
        if uuid not in self._retries:
            loop = asyncio.get_running_loop()
            self._retries[uuid] = loop.call_later(RETRY_SECONDS, self._retry, uuid)
            metrics.QUEUE_DEPTH.inc()

    def _retry(self, uuid: str) -> None:
        del self._retries[uuid]
        metrics.QUEUE_DEPTH.dec()
        self.changed(uuid)

    async def _converge(self, uuid: str) -> None:
        stored = self._lookup(uuid)
        # Deleted (after this node's teardown), purged, or placed elsewhere:
        # nothing of it stays here.
        if stored is None or stored.record.instance.state == states.DELETED:
            await self._tear_down(uuid)
            return
        state = stored.record.instance.state
        if state in BUILDING:
            await self._create(stored)
        elif state == states.CREATED:
            await self._check_running(stored)
        elif state == states.DELETE_WAIT:
            await self._delete(stored)
        elif state in FAILED:
            await self._tear_down(uuid, _networks(stored))
            await self._move(stored, state, states.ERROR)
        elif state == states.ERROR:
            await self._tear_down(uuid, _networks(stored))

    async def _create(self, stored: StoredInstance) -> None:
        with tracing.span("create instance", parent=stored.record.create_traceparent):
            await self._build(stored)

    async def _build(self, stored: StoredInstance) -> None:
        instance = stored.record.instance
        uuid, state = instance.uuid, instance.state
        stages = Stopwatch()
        try:
            if state == states.INITIAL:
                stored = await self._move(stored, state, states.PREFLIGHT)
                state = states.PREFLIGHT
            with stages("images"):
                images = await self._builder.fetch_images(stored.record)
                nvram_template = await self._builder.fetch_nvram_template(stored.record)
            if state == states.PREFLIGHT:
                stored = await self._move(stored, state, states.CREATING)
                state = states.CREATING
            stored = await self._console_port(stored, states.CREATING)
            bridges = await self._networking.attach(instance)
            graphics = self._graphics.device(stored.record)
            domain = await self._builder.lay_out(
                instance, images, bridges, nvram_template, graphics=graphics
            )
            stages.seconds.update(domain.seconds)
            # The follower's copy may lag this node's own writes: start
            # nothing unless etcd still says creating (a second pass over an
            # instance created and then powered off must not boot it).
            await self._still(uuid, states.CREATING)
            with stages("define"):
                await self._hypervisor.define(domain.xml)
            with stages("boot"):
                await self._start(stored, states.CREATING, self._hypervisor.boot)
        except (BuildError, HypervisorError, NetworkGone, DataPlaneError, NoFreePort) as exc:
            await self._fail(stored, state, str(exc))
            return

        try:
            await write_created(self._records, self._blobs, uuid, domain.disks)
        except BlobUnusable as exc:
            await self._fail(stored, states.CREATING, f"a disk's base image went away: {exc}")
            return
        self._status(uuid, f"state {_state_name(states.CREATED)}")
        metrics.record_stages(stages.seconds)
        self._status(
            uuid,
            "instance created",
            duration=sum(stages.seconds.values()),
            extra={"seconds": {name: round(value, 6) for name, value in stages.seconds.items()}},
        )

    async def power_on(self, uuid: str) -> None:
        """Start a created instance's domain unless it runs, moving its
        console to another port when its own is taken. Raises
        HypervisorError (a refusal), or NoFreePort."""
        stored = self._lookup(uuid)
        if stored is None:
            raise HypervisorError(f"instance {uuid} is not on this node")

        async def start(uuid: str) -> None:
            await self._hypervisor.change(uuid, POWER_ON)

        try:
            await self._start(stored, states.CREATED, start)
        except Superseded as exc:  # deleted meanwhile, say: the caller reads the state
            raise HypervisorError(f"instance {uuid} changed while starting") from exc

    async def _start(
        self,
        stored: StoredInstance,
        state: int,
        start: Callable[[str], Awaitable[None]],
    ) -> None:
        """`start` the domain; when QEMU finds its console port taken, the
        instance (in `state`) gets another, its domain is redefined with it,
        and the start is tried again, `PORT_MOVES` times at most."""
        uuid = stored.record.instance.uuid
        for moves in range(PORT_MOVES + 1):
            try:
                await start(uuid)
                return
            except HypervisorError as exc:
                if moves == PORT_MOVES or not graphics_port_clash(str(exc)):
                    raise
            taken = stored.record.instance.vdi_port
            stored = await self._console_port(stored, state, avoid={taken})
            port = stored.record.instance.vdi_port
            await self._hypervisor.move_graphics(uuid, port)
            self._emit(
                uuid,
                event_pb2.EVENT_TYPE_AUDIT,
                "console port moved",
                extra={"taken": taken, "vdi_port": port},
            )

    async def _console_port(
        self, stored: StoredInstance, state: int, *, avoid: Set[int] = frozenset()
    ) -> StoredInstance:
        """The instance (in `state`) as written with a console port in its
        record (``graphics_ports.py``): the one it holds, unless `avoid`
        names it, else a new one."""
        instance = stored.record.instance
        if instance.HasField("vdi_port") and instance.vdi_port not in avoid:
            return stored
        port = self._graphics.choose(instance.uuid, avoid=avoid)

        def give(record: records_pb2.InstanceRecord) -> None:
            self._graphics.assign(record, port)

        return await self._move(stored, state, state, give)

    async def _tear_down(self, uuid: str, used: Iterable[str] = ()) -> None:
        """The domain and files go, then this node's share of its networks
        (`used`: those it was on, when known)."""
        await self._builder.tear_down(uuid)
        await self._networking.detach(uuid, used)
        self._power_locks.pop(uuid, None)

    async def _still(self, uuid: str, state: int) -> None:
        """Superseded unless etcd shows the instance in `state` now."""
        fresh = await self._records.get(uuid)
        if fresh is None or fresh.record.instance.state != state:
            raise Superseded

    async def _check_running(self, stored: StoredInstance) -> None:
        """After a restart, or a change to a running instance: the domain must
        still exist, the record must show its real power state, and the
        domain may hold no NIC the record does not (`hotplug.py`)."""
        uuid = stored.record.instance.uuid
        # After a restart, say; and a withdrawn hot-plugged NIC's pin goes.
        await self._networking.attach(stored.record.instance, revision=stored.mod_revision)
        async with self.power_guard(uuid):
            try:
                power = await self._hypervisor.state(uuid)
            except HypervisorError as exc:
                log.warning(
                    "cannot read domain state: %s", exc, extra={"fields": {"instance": uuid}}
                )
                return
            if power is not None:
                await self.record_power(uuid, power)
        if power is not None:
            if await self._hotplug.remove_strays(stored):
                self._retry_later(uuid)  # a stray left: nothing else may look again
            return
        await self._fail(stored, states.CREATED, "the instance's domain has disappeared")

    async def _delete(self, stored: StoredInstance) -> None:
        """Reference §3.1's delete: the domain powered off and undefined,
        the disks removed, this node's share of the instance's networks let
        go; then the record says so (`torn_down_at`, `power_state: off`) and
        the api ends it (`deleted`, its addresses given back). Until that
        write lands, every pass (after a restart, say) tears down again."""
        if stored.record.torn_down_at:
            return
        uuid, power = stored.record.instance.uuid, stored.record.instance.power_state
        had_domain = await self._hypervisor.remove(uuid)
        started = time.perf_counter()
        await self._builder.remove_files(uuid)
        took = time.perf_counter() - started
        await self._networking.detach(uuid, _networks(stored))

        def torn_down(record: records_pb2.InstanceRecord) -> None:
            if record.torn_down_at:  # an earlier pass did, unseen by this copy yet
                raise Superseded
            record.instance.power_state = Power.POWER_STATE_OFF
            record.torn_down_at = time.time()
            cleared(record)  # its console port is free again

        await self._move(stored, states.DELETE_WAIT, states.DELETE_WAIT, torn_down)
        if power != Power.POWER_STATE_OFF:
            off = {"power_state": "off", "attribute": "power_state"}  # reference §7.2's shape
            self._emit(uuid, event_pb2.EVENT_TYPE_MUTATE, "set attribute", extra=off)
        if had_domain:
            self._emit(uuid, event_pb2.EVENT_TYPE_AUDIT, "poweroff")
        self._status(uuid, "delete disks complete", duration=took)

    async def _fail(self, stored: StoredInstance, state: int, message: str) -> None:
        """Reference §3.1's error path: `<state>-error` with the reason at once,
        then everything torn down, then `error`."""
        uuid = stored.record.instance.uuid
        self._status(uuid, f"instance failed: {message}")

        def with_reason(record: records_pb2.InstanceRecord) -> None:
            record.instance.error_message = message

        failing = FAILING[state]
        stored = await self._move(stored, state, failing, with_reason)
        await self._tear_down(uuid, _networks(stored))
        await self._move(stored, failing, states.ERROR)

    async def _move(
        self,
        stored: StoredInstance,
        expected: int,
        new: int,
        change: Callable[[records_pb2.InstanceRecord], None] | None = None,
    ) -> StoredInstance:
        """Write `new` (and `change`) if the record is still in `expected`."""

        def apply(record: records_pb2.InstanceRecord) -> None:
            if record.instance.state != expected:
                raise Superseded
            record.instance.state = new  # type: ignore[assignment]
            if change is not None:
                change(record)

        try:
            record = await self._records.update(stored, apply)
        except errors.NotFound as exc:
            raise Superseded from exc
        if new != expected:
            self._status(record.instance.uuid, f"state {_state_name(new)}")
        # The new revision is not known here: the next update re-reads.
        return StoredInstance(record, 0)

    def _status(
        self,
        uuid: str,
        message: str,
        *,
        duration: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._emit(uuid, event_pb2.EVENT_TYPE_STATUS, message, duration=duration, extra=extra)

    def _emit(
        self,
        uuid: str,
        event_type: int,
        message: str,
        *,
        duration: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._emitter.emit("instance", uuid, event_type, message, duration=duration, extra=extra)


async def write_created(
    records: InstanceStore, blobs: BlobRecords, uuid: str, disks: list[instance_pb2.Disk]
) -> records_pb2.InstanceRecord:
    """`creating` -> `created` with the disks as laid out, and, in the same
    transaction, one reference on each disk's blob (the api lets go of them
    when the instance is deleted). Raises BlobUnusable when a blob is gone or
    deleted meanwhile, Superseded when the instance moved on."""
    counts = Counter(disk.blob_uuid for disk in disks if disk.HasField("blob_uuid"))
    while True:
        fresh = await records.get(uuid)
        if fresh is None or fresh.record.instance.state != states.CREATING:
            raise Superseded
        record = records_pb2.InstanceRecord()
        record.CopyFrom(fresh.record)
        record.instance.state = states.CREATED  # type: ignore[assignment]
        record.instance.power_state = Power.POWER_STATE_ON
        del record.instance.disks[:]
        record.instance.disks.extend(disks)
        for nic in record.instance.interfaces:
            nic.state = instance_pb2.INTERFACE_STATE_CREATED
        references = await blobs.reference_operations(counts) if counts else []
        if await records.replace(fresh, record, *references):
            return record


def _networks(stored: StoredInstance) -> set[str]:
    """The networks an instance has NICs on. Pure."""
    return {nic.network_uuid for nic in stored.record.instance.interfaces}


def _state_name(state: int) -> str:
    return wire_name(instance_pb2.InstanceState.DESCRIPTOR, state)
