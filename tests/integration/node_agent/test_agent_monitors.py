"""services/node_agent/agent_monitors.py against a real etcd: the part follows
the records placed on its node (as the node agent wires it), runs a monitor
against a scripted agent, and keeps agent_state and the agent's times in the
records (reference §5.4)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sfmesh.v1 import instance_pb2, records_pb2

from services.common import instance_states as states
from services.common.instance_store import InstanceStore
from services.common.store import Store
from services.node_agent.agent_monitor import Timings
from services.node_agent.agent_monitors import AgentMonitors
from services.node_agent.notices import Notices
from services.node_agent.placed import PlacedInstances
from tests.event_sinks import RecordedEvents
from tests.integration.node_agent.fake_agent import FakeAgent, start_agent

NODE = "agent-monitors-test"
FAST = Timings(connect_retry=0.05, tick=0.05, ask_while_not_ready=0.3)


@dataclass
class Rig:
    records: InstanceStore
    monitors: AgentMonitors
    events: RecordedEvents
    folder: Path

    async def place(self, *, channels: tuple[str, ...] = ("sf-agent",)) -> str:
        record = records_pb2.InstanceRecord()
        instance = record.instance
        instance.uuid = str(uuid.uuid4())
        instance.name = "agent-test"
        instance.namespace = "agent-test"
        instance.node = NODE
        instance.state = states.CREATED
        instance.power_state = instance_pb2.POWER_STATE_ON
        instance.side_channels.extend(channels)
        assert await self.records.create(record)
        return instance.uuid

    async def record(self, uuid: str) -> instance_pb2.Instance:
        stored = await self.records.get(uuid)
        assert stored is not None
        return stored.record.instance

    async def set_power(self, uuid: str, power: instance_pb2.PowerState) -> None:
        stored = await self.records.get(uuid)
        assert stored is not None

        def change(record: records_pb2.InstanceRecord) -> None:
            record.instance.power_state = power

        await self.records.update(stored, change)

    async def until(
        self, uuid: str, check: Callable[[instance_pb2.Instance], bool], within: float = 5.0
    ) -> instance_pb2.Instance:
        deadline = time.monotonic() + within
        while True:
            instance = await self.record(uuid)
            if check(instance):
                return instance
            assert time.monotonic() < deadline, instance
            await asyncio.sleep(0.02)

    def agent(self, uuid: str) -> FakeAgent:
        return FakeAgent(socket_of(self.folder, uuid))


def socket_of(folder: Path, uuid: str) -> Path:
    """A short path: pytest's tmp folders are too deep for a UNIX socket."""
    return folder / uuid[:8] / "sc-sf-agent"


@pytest.fixture
async def rig(etcd: str) -> AsyncIterator[Rig]:
    folder = Path(tempfile.mkdtemp(prefix="sfa-"))
    store = Store(etcd)
    records = InstanceStore(store)
    events = RecordedEvents()
    notices = Notices()
    placed = PlacedInstances(records, NODE, notices.instance_changed)
    monitors = AgentMonitors(
        records=records,
        lookup=placed.get,
        placed=placed.instances,
        socket=lambda uuid: socket_of(folder, uuid),
        events=events,
        timings=FAST,
    )
    notices.instance_changed.connect(monitors.changed)
    tasks = [asyncio.create_task(placed.run()), asyncio.create_task(monitors.run())]
    try:
        yield Rig(records, monitors, events, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await monitors.close()
        await store.close()


@contextlib.asynccontextmanager
async def serving(agent: FakeAgent) -> AsyncIterator[FakeAgent]:
    agent.path.parent.mkdir(exist_ok=True)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop()


async def test_ready_then_powered_off_then_ready_again(rig: Rig) -> None:
    uuid = await rig.place()
    await rig.until(uuid, lambda i: i.agent_state == "not ready (no contact)")
    before = time.time()
    async with serving(rig.agent(uuid)) as agent:
        await start_agent(agent, boot_time=1700000000.0)
        await agent.answer_system()
        ready = await rig.until(uuid, lambda i: i.agent_state == "ready")
        assert before <= ready.agent_start_time <= time.time()
        assert ready.agent_system_boot_time == 1700000000.0
        assert rig.monitors.monitor(uuid) is not None

        await rig.set_power(uuid, instance_pb2.POWER_STATE_OFF)
        await rig.until(uuid, lambda i: i.agent_state == "not ready (instance powered off)")
        assert rig.monitors.monitor(uuid) is None

        await rig.set_power(uuid, instance_pb2.POWER_STATE_PAUSED)
        await rig.until(uuid, lambda i: i.agent_state == "not ready (instance paused)")

        agent.forget()
        await rig.set_power(uuid, instance_pb2.POWER_STATE_ON)
        await agent.answer_system()  # a new monitor asks at once
        await rig.until(uuid, lambda i: i.agent_state == "ready")
        assert rig.events.messages(uuid) == []

        # The guest rebooted: its agent starts again with another boot time.
        await start_agent(agent, boot_time=1700000500.0)
        await agent.answer_system()
        rebooted = await rig.until(uuid, lambda i: i.agent_system_boot_time == 1700000500.0)
        assert rebooted.agent_start_time > ready.agent_start_time
        assert rig.events.messages(uuid) == ["reboot detected"]


async def test_no_channel_no_monitor_and_a_null_state(rig: Rig) -> None:
    uuid = await rig.place(channels=())
    watched = await rig.place()
    await rig.until(watched, lambda i: i.agent_state == "not ready (no contact)")
    await rig.set_power(uuid, instance_pb2.POWER_STATE_OFF)
    await asyncio.sleep(0.3)
    assert not (await rig.record(uuid)).HasField("agent_state")
    assert rig.monitors.monitor(uuid) is None


async def test_a_deleting_instance_loses_its_monitor_and_keeps_its_state(rig: Rig) -> None:
    uuid = await rig.place()
    await rig.until(uuid, lambda i: i.agent_state == "not ready (no contact)")
    stored = await rig.records.get(uuid)
    assert stored is not None

    def delete(record: records_pb2.InstanceRecord) -> None:
        record.instance.state = states.DELETE_WAIT

    await rig.records.update(stored, delete)
    for _ in range(100):
        if rig.monitors.monitor(uuid) is None:
            break
        await asyncio.sleep(0.02)
    assert rig.monitors.monitor(uuid) is None
    assert (await rig.record(uuid)).agent_state == "not ready (no contact)"
