"""The agent monitors of one node: an `AgentMonitor` for every instance here
whose domain runs with an `sf-agent` channel, and `agent_state` (with
`agent_start_time`, `agent_system_boot_time`) kept true in its record
(reference §5.4).

Level-based, like the reconciler: what an instance should have follows from
its record alone (`intent`, pure) — a monitor while it is `created` and on;
none, and `not ready (instance powered off)` or `not ready (instance
paused)`, while it is off or paused (Shaken Fist [B] sets those in its
power-off and pause handlers; here they follow the power state however it
changed, a guest's own shutdown included); nothing at all for an instance
without the channel, whose agent_state stays null. A record change pokes
its instance (`changed`, connected to the `instance_changed` notice), and
every 5 s each instance is looked at again, which restarts a monitor that
ended and writes again a state a failed write left behind.

Writes are compare-and-swap updates, one instance's in the order their
news arrived, each checking that the power state it was meant for still
holds, so a monitor's last word can never land after the power-off's.
A change of the guest's boot time between two agent starts is recorded as
an instance event, `reboot detected`.

For the agent operations: `monitor(uuid)` is the running monitor of an
instance, whose `call`/`exchange` send a command and await its replies
under a deadline (`agent_monitor.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sfmesh.v1 import event_pb2, instance_pb2, records_pb2

from services.common import errors
from services.common import instance_states as states
from services.common import side_channels as channels
from services.common.events import EventSink
from services.common.instance_store import InstanceStore, StoredInstance
from services.node_agent import agent_protocol as protocol
from services.node_agent.agent_monitor import AgentMonitor, AgentReport, Timings

log = logging.getLogger("sfmesh.node_agent.agent")

Power = instance_pb2.PowerState
SWEEP_SECONDS = 5.0
"""Between looks at every instance here."""


@dataclass(frozen=True)
class Intent:
    """What one instance should have."""

    monitored: bool
    """A monitor runs."""
    state: str | None = None
    """Without a monitor: the agent_state to show (None: leave it)."""
    power: Power = instance_pb2.POWER_STATE_ON
    """The power state under which a write of it stands."""


IDLE = Intent(monitored=False)


def intent(instance: instance_pb2.Instance | None) -> Intent:
    """What an instance's record asks of the agent monitors. Pure."""
    if instance is None or instance.state != states.CREATED:
        return IDLE
    if channels.AGENT not in instance.side_channels:
        return IDLE
    if instance.power_state == instance_pb2.POWER_STATE_ON:
        return Intent(monitored=True)
    if instance.power_state == instance_pb2.POWER_STATE_OFF:
        return Intent(False, protocol.INSTANCE_POWERED_OFF, instance_pb2.POWER_STATE_OFF)
    if instance.power_state == instance_pb2.POWER_STATE_PAUSED:
        return Intent(False, protocol.INSTANCE_PAUSED, instance_pb2.POWER_STATE_PAUSED)
    return IDLE


def apply_report(record: records_pb2.InstanceRecord, report: AgentReport, power: Power) -> bool:
    """Put a report into an instance record; False (record untouched) when
    the record no longer stands under `power` or already says it. Pure."""
    instance = record.instance
    wanted = intent(instance)
    if wanted == IDLE or wanted.power != power:
        return False
    changed = False
    if not instance.HasField("agent_state") or instance.agent_state != report.state:
        instance.agent_state = report.state
        changed = True
    if report.start_time is not None:
        instance.agent_start_time = report.start_time
        changed = True
    if report.boot_time is not None and instance.agent_system_boot_time != report.boot_time:
        instance.agent_system_boot_time = report.boot_time
        changed = True
    return changed


class Unchanged(Exception):
    """The record already says it, or no longer stands for it."""


class AgentMonitors:
    """Runs the agent monitors of the instances placed here (a node agent part)."""

    def __init__(
        self,
        *,
        records: InstanceStore,
        lookup: Callable[[str], StoredInstance | None],
        placed: Callable[[], Iterable[instance_pb2.Instance]],
        socket: Callable[[str], Path],
        events: EventSink,
        timings: Timings | None = None,
    ) -> None:
        self._records = records
        self._lookup = lookup
        self._placed = placed
        self._socket = socket
        self._events = events
        self._timings = timings
        self._monitors: dict[str, tuple[AgentMonitor, asyncio.Task[None]]] = {}
        self._poked: set[str] = set()
        self._wake = asyncio.Event()
        self._queued: dict[str, list[tuple[AgentReport, Power]]] = {}
        """Reports of each instance not written yet, oldest first."""
        self._writers: dict[str, asyncio.Task[None]] = {}
        """A task per instance with reports queued: it writes them in order."""

    def monitor(self, uuid: str) -> AgentMonitor | None:
        """The running monitor of an instance, if any."""
        running = self._monitors.get(uuid)
        return None if running is None else running[0]

    def changed(self, uuid: str) -> None:
        """An instance record here changed: look at it soon."""
        self._poked.add(uuid)
        self._wake.set()

    async def run(self) -> None:
        """Keep monitors and states in line with the records until cancelled."""
        loop = asyncio.get_running_loop()
        swept_at = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SWEEP_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            poked, self._poked = self._poked, set()
            if loop.time() - swept_at >= SWEEP_SECONDS:
                swept_at = loop.time()
                poked |= {instance.uuid for instance in self._placed()} | set(self._monitors)
            for uuid in sorted(poked):
                await self._settle(uuid)

    async def close(self) -> None:
        """Stop every monitor (the states stay as written) and every write."""
        for uuid in list(self._monitors):
            await self._stop(uuid)
        for task in list(self._writers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _settle(self, uuid: str) -> None:
        stored = self._lookup(uuid)
        wanted = intent(None if stored is None else stored.record.instance)
        running = self._monitors.get(uuid)
        if running is not None and (not wanted.monitored or running[1].done()):
            await self._stop(uuid)
            running = None
        if wanted.monitored and running is None:
            self._start(uuid)
        # The state to show: the monitor's, or the one the power state means.
        shown = self._monitors[uuid][0].state if wanted.monitored else wanted.state
        if stored is not None and shown is not None and stored.record.instance.agent_state != shown:
            self._write(uuid, AgentReport(shown), wanted.power)

    def _start(self, uuid: str) -> None:
        monitor = AgentMonitor(
            uuid,
            self._socket(uuid),
            lambda report: self._write(uuid, report, instance_pb2.POWER_STATE_ON),
            timings=self._timings,
        )
        # One that ends (it should not) is started again by the next sweep.
        self._monitors[uuid] = (monitor, asyncio.create_task(monitor.run(), name=f"agent-{uuid}"))

    async def _stop(self, uuid: str) -> None:
        _monitor, task = self._monitors.pop(uuid)
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "agent monitor failed",
                exc_info=task.exception(),
                extra={"fields": {"instance": uuid}},
            )

    def _write(self, uuid: str, report: AgentReport, power: Power) -> None:
        """Write a report into the record, after the instance's earlier ones
        (one writer task per instance, ending once it has none left)."""
        self._queued.setdefault(uuid, []).append((report, power))
        if uuid not in self._writers:
            self._writers[uuid] = asyncio.create_task(self._drain(uuid), name=f"agent-state-{uuid}")

    async def _drain(self, uuid: str) -> None:
        try:
            while queued := self._queued.pop(uuid, None):
                for report, power in queued:
                    await self._write_now(uuid, report, power)
        finally:
            self._writers.pop(uuid, None)  # at once: a report from now on starts a new writer

    async def _write_now(self, uuid: str, report: AgentReport, power: Power) -> None:
        stored = self._lookup(uuid)  # possibly stale: the update re-reads on conflict
        if stored is None:
            return
        booted: list[float] = []

        def change(record: records_pb2.InstanceRecord) -> None:
            booted[:] = [record.instance.agent_system_boot_time]
            if not apply_report(record, report, power):
                raise Unchanged

        try:
            await self._records.update(stored, change)
        except (Unchanged, errors.NotFound):
            return
        except Exception:  # etcd away: the next sweep writes it again
            log.exception("writing agent_state failed", extra={"fields": {"instance": uuid}})
            return
        before = booted[0] if booted else 0.0
        if report.boot_time is not None and before and before != report.boot_time:
            self._events.emit(
                "instance",
                uuid,
                event_pb2.EVENT_TYPE_STATUS,
                "reboot detected",
                extra={"previous_boot_time": before, "boot_time": report.boot_time},
            )
