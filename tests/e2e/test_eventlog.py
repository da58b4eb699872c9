"""The eventlog in the whole mesh: nothing lost across a kill -9, live watches."""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from sfmesh.v1 import event_pb2, eventlog_service_pb2, eventlog_service_pb2_grpc

from devmesh.mesh import Mesh
from services.common.events import EventEmitter
from services.common.transport import Transport
from tests.e2e.producers import credentials, produce

pytestmark = pytest.mark.slow

PRODUCERS = 3
EVENTS = 10_000


async def stored_count(mesh: Mesh, subject: str) -> int:
    async with grpc.aio.insecure_channel(mesh.address("eventlog")) as channel:
        stub = eventlog_service_pb2_grpc.EventLogServiceStub(channel)
        reply = await stub.List(
            eventlog_service_pb2.ListRequest(object_type="test", object_uuid=subject, limit=-1),
            metadata=credentials(mesh.state_dir).metadata(),
            timeout=30,
        )
    return len(reply.events)


def test_kill_minus_9_in_a_burst_loses_and_duplicates_nothing(mesh: Mesh, tmp_path: Path) -> None:
    subject = str(uuid.uuid4())
    context = multiprocessing.get_context("spawn")
    producers = [
        context.Process(
            target=produce,
            args=(
                mesh.address("eventlog"),
                str(mesh.state_dir),
                str(tmp_path / f"spool-{index}"),
                subject,
                EVENTS // PRODUCERS + (1 if index < EVENTS % PRODUCERS else 0),
                index,
            ),
        )
        for index in range(PRODUCERS)
    ]
    for producer in producers:
        producer.start()
    deadline = time.monotonic() + 60
    while (stored := asyncio.run(stored_count(mesh, subject))) < EVENTS // 10:
        assert time.monotonic() < deadline, "the burst never started"
        time.sleep(0.05)
    mesh.stop_service("eventlog", signal.SIGKILL)
    assert stored < EVENTS // 2, "the kill must land in the middle of the burst"
    time.sleep(0.5)
    mesh.start_service("eventlog")
    for producer in producers:
        producer.join(180)
        assert producer.exitcode == 0
    assert asyncio.run(stored_count(mesh, subject)) == EVENTS


@pytest.fixture
async def emitter(mesh: Mesh, tmp_path: Path) -> AsyncIterator[EventEmitter]:
    started = EventEmitter(
        address=mesh.address("eventlog"),
        producer_id="e2e-watch",
        spool_dir=tmp_path / "spool",
        fqdn="e2e",
        credentials=credentials(mesh.state_dir).metadata,
        transport=Transport(),
    )
    await started.start()
    yield started
    await started.close()


async def test_a_watcher_sees_a_new_event_within_100_ms(mesh: Mesh, emitter: EventEmitter) -> None:
    subject = str(uuid.uuid4())
    emitter.emit("test", subject, event_pb2.EVENT_TYPE_AUDIT, "before the watch")
    assert await emitter.flushed(timeout=10)
    async with grpc.aio.insecure_channel(mesh.address("eventlog")) as channel:
        stub = eventlog_service_pb2_grpc.EventLogServiceStub(channel)
        watch = stub.Watch(
            eventlog_service_pb2.WatchRequest(object_type="test", object_uuid=subject),
            metadata=credentials(mesh.state_dir).metadata(),
        )
        await asyncio.sleep(0.3)  # the watch is established, after the first event
        latencies = []
        for number in range(5):
            sent = time.monotonic()
            emitter.emit("test", subject, event_pb2.EVENT_TYPE_AUDIT, f"live {number}")
            seen = await asyncio.wait_for(watch.read(), 5)
            latencies.append(time.monotonic() - sent)
            assert seen.event.message == f"live {number}"
        watch.cancel()
    assert max(latencies) < 0.1, latencies
