"""The node agent's metrics (`services/node_agent/metrics.py`) through the
real reconciler and power audit, on a real etcd, with libvirt, disks and
networks stood in for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from sfmesh.v1 import instance_pb2, records_pb2

from services.common import instance_states as states
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.store import Store
from services.node_agent import metrics, resync
from services.node_agent.builder import LaidOut
from services.node_agent.reconciler import Reconciler
from tests.event_sinks import RecordedEvents
from tests.metric_samples import sample

DEPTH = "sfmesh_node_reconcile_queue_depth"


class StandIn:
    """The builder, networking, hypervisor and console ports of a node
    where every step succeeds at once, except image fetches when `failing`,
    and domain teardowns, which wait for `released`."""

    def __init__(self) -> None:
        self.failing = False
        self.released = asyncio.Event()

    async def fetch_images(self, record: records_pb2.InstanceRecord) -> dict[str, Any]:
        if self.failing:
            raise RuntimeError("etcd away, say")
        return {}

    async def fetch_nvram_template(self, record: records_pb2.InstanceRecord) -> None:
        return None

    async def lay_out(self, *args: Any, **kwargs: Any) -> LaidOut:
        return LaidOut("<domain/>", [], {"disks": 0.01, "config drive": 0.02})

    async def tear_down(self, uuid: str) -> None:
        await self.released.wait()

    async def attach(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        return {}

    async def detach(self, *args: Any) -> None:
        return None

    async def define(self, xml: str) -> None:
        return None

    async def boot(self, uuid: str) -> None:
        return None

    def device(self, record: records_pb2.InstanceRecord) -> None:
        return None


@pytest.fixture
async def records(etcd: str) -> AsyncIterator[InstanceStore]:
    store = Store(etcd)
    yield InstanceStore(store)
    await store.close()


def reconciler(
    records: InstanceStore, stand_in: StandIn, found: dict[str, StoredInstance]
) -> Reconciler:
    part = cast(Any, stand_in)
    return Reconciler(
        records=records,
        blobs=cast(Any, None),  # no disk of these instances has a blob
        lookup=found.get,
        builder=part,
        networking=part,
        hypervisor=part,
        hotplug=part,
        emitter=RecordedEvents(),
        graphics=part,
    )


async def creating(records: InstanceStore) -> StoredInstance:
    """A new instance record in `creating`, its console port chosen."""
    instance = instance_pb2.Instance(uuid=str(uuid.uuid4()), state=states.CREATING, vdi_port=5900)
    assert await records.create(records_pb2.InstanceRecord(instance=instance))
    stored = await records.get(instance.uuid)
    assert stored is not None
    return stored


async def settled(converging: Reconciler) -> None:
    """Wait until every instance converging now has settled."""
    async with asyncio.timeout(5):
        await asyncio.wait(list(converging._running.values()))


async def test_a_create_observes_each_stage(records: InstanceStore) -> None:
    stored = await creating(records)
    before = {
        stage: sample("sfmesh_node_stage_duration_seconds_count", stage=stage)
        for stage in metrics.STAGES
    }
    converging = reconciler(records, StandIn(), {stored.record.instance.uuid: stored})
    converging.changed(stored.record.instance.uuid)
    await settled(converging)
    created = await records.get(stored.record.instance.uuid)
    assert created is not None and created.record.instance.state == states.CREATED
    for stage in metrics.STAGES:
        assert sample("sfmesh_node_stage_duration_seconds_count", stage=stage) == before[stage] + 1
    await converging.close()


async def test_the_queue_holds_what_converges_and_what_waits_to_retry(
    records: InstanceStore,
) -> None:
    depth = sample(DEPTH)
    stand_in = StandIn()
    stored = await creating(records)
    converging = reconciler(records, stand_in, {stored.record.instance.uuid: stored})
    converging.changed("gone-1")  # not placed here: torn down, which waits
    converging.changed("gone-2")
    converging.changed("gone-1")  # converging already: again afterwards, not twice at once
    assert sample(DEPTH) == depth + 2
    stand_in.released.set()
    await settled(converging)
    assert sample(DEPTH) == depth

    stand_in.failing = True
    converging.changed(stored.record.instance.uuid)  # fails: due again in RETRY_SECONDS
    await settled(converging)
    assert sample(DEPTH) == depth + 1
    await converging.close()
    assert sample(DEPTH) == depth


async def test_the_power_audit_counts_created_domains_by_power_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def instance(state: int, power: int) -> instance_pb2.Instance:
        return instance_pb2.Instance(uuid=str(uuid.uuid4()), state=state, power_state=power)  # type: ignore[arg-type]

    hosted = [
        instance(states.CREATED, instance_pb2.POWER_STATE_ON),
        instance(states.CREATED, instance_pb2.POWER_STATE_ON),
        instance(states.CREATED, instance_pb2.POWER_STATE_OFF),
        instance(states.CREATING, instance_pb2.POWER_STATE_INITIAL),  # no domain yet
    ]
    placed = cast(Any, type("Placed", (), {"hosted": lambda self: hosted})())
    monkeypatch.setattr(resync, "AUDIT_INTERVAL", 0.01)
    auditing = asyncio.create_task(resync.audit_power(placed, lambda uuid: None))
    try:
        await asyncio.sleep(0.05)
        counted = {
            state: sample("sfmesh_node_domains", state=state) for state in metrics.POWER_STATES
        }
        assert counted == {state: 0 for state in metrics.POWER_STATES} | {"on": 2, "off": 1}
        hosted.pop(0)
        await asyncio.sleep(0.05)
        assert sample("sfmesh_node_domains", state="on") == 1
    finally:
        auditing.cancel()
