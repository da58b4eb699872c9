"""NodeService's resource routes against a real etcd: the process metrics a
node agent records (services/node_agent/resources.py) are what
GetNodeProcessMetrics answers, GetClusterResources sums the created nodes'
last reports, and both are the system namespace's alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from google.protobuf import json_format
from sfmesh.v1 import event_pb2, node_service_pb2, records_pb2, scheduler_service_pb2

from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.clients.outbox import Outbox
from services.api.instances.deletion import Finisher
from services.api.networks.store import NetworkStore
from services.api.nodes.retirement import Retirement
from services.api.nodes.servicer import NodeServicer
from services.api.nodes.store import NodeStore
from services.common import errors
from services.common.events import EventEmitter
from services.common.instance_store import InstanceStore
from services.common.interceptors import _caller
from services.common.scheduler_policy import POLICY_KEY
from services.common.store import Put, Store, key
from services.common.tokens import Caller
from services.node_agent import facts
from services.node_agent.process_metrics import ProcessSample
from services.node_agent.resources import MESSAGE, Resources
from tests.event_sinks import RecordedEvents

CREATED = node_service_pb2.NODE_STATE_CREATED
REQUEST: Any = None  # the servicer reads no context
ProcessMetrics = node_service_pb2.GetNodeProcessMetricsRequest
CLUSTER = node_service_pb2.GetClusterResourcesRequest()


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    opened = Store(etcd)
    yield opened
    await opened.close()


@pytest.fixture
def servicer(store: Store, events: Events, emitter: EventEmitter) -> NodeServicer:
    """NodeService as services/api/server.py builds it."""
    instances, networks, artifacts = InstanceStore(store), NetworkStore(store), ArtifactStore(store)
    finisher = Finisher(instances, networks, events, artifacts, Outbox(store, emitter))
    nodes = NodeStore(store)
    return NodeServicer(nodes, events, Retirement(nodes, instances, finisher, artifacts))


@pytest.fixture
def as_system() -> Iterator[None]:
    token = _caller.set(Caller(namespace="system", key_name="k", nonce=""))
    yield
    _caller.reset(token)


async def a_node(
    store: Store, *, state: node_service_pb2.NodeState = CREATED, cpus_used: int = 1
) -> str:
    name = f"hv-{uuid.uuid4().hex[:8]}"
    record = records_pb2.NodeRecord(name=name, state=state)
    record.last_report.CopyFrom(
        scheduler_service_pb2.ReportNodeRequest(
            cpus_total=4,
            cpus_used=cpus_used,
            memory_total_mib=8000,
            memory_free_mib=5000,
            disk_free_gib=30,
            load_1m=0.5,
            load_5m=0.25,
            load_15m=0.125,
            instance_uuids=["a"],
            instances_active=1,
        )
    )
    assert await store.commit([Put(key("node", name), record.SerializeToString())])
    return name


@pytest.mark.usefixtures("as_system")
async def test_what_a_node_agent_records_the_api_answers(
    store: Store, servicer: NodeServicer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = await a_node(store)
    assert (await servicer.GetNodeProcessMetrics(ProcessMetrics(node=name), REQUEST)).metrics == {}
    sample = ProcessSample("sfmesh-node_agent", 42, 30.0, 120.0)
    monkeypatch.setattr("services.node_agent.resources.read_processes", lambda now: [sample])
    facts.instances_dir(tmp_path).mkdir()
    sink = RecordedEvents()
    resources = Resources(
        node=name,
        state_dir=tmp_path,
        sample=lambda: facts.read_capacity(tmp_path, []),
        store=store,
        emitter=sink,
    )
    await resources.record()

    reply = await servicer.GetNodeProcessMetrics(ProcessMetrics(node=name), REQUEST)
    assert json_format.MessageToDict(reply.metrics) == {
        "process_cpu_time_sfmesh_node_agent": 30.0,
        "process_age_sfmesh_node_agent": 120.0,
        "process_cpu_fraction_sfmesh_node_agent": 0.25,
    }
    [event] = sink.events
    assert (event.object_type, event.object_uuid) == ("node", name)
    assert (event.event_type, event.message) == (event_pb2.EVENT_TYPE_RESOURCES, MESSAGE)
    assert event.extra["cpu_max"] >= 1 and event.extra["disk_total"] > 0


@pytest.mark.usefixtures("as_system")
async def test_an_unknown_node_has_no_process_metrics(servicer: NodeServicer) -> None:
    with pytest.raises(errors.NotFound, match="node not found"):
        await servicer.GetNodeProcessMetrics(ProcessMetrics(node="no-such-node"), REQUEST)


@pytest.mark.usefixtures("as_system")
async def test_cluster_resources_list_the_created_nodes(
    store: Store, servicer: NodeServicer
) -> None:
    policy = records_pb2.SchedulerPolicyRecord(cpu_overcommit_ratio=2.0, ram_reserved_mib=1000)
    await store.commit([Put(POLICY_KEY, policy.SerializeToString())])  # as a leader writes it
    before = await servicer.GetClusterResources(
        node_service_pb2.GetClusterResourcesRequest(), REQUEST
    )
    busy = await a_node(store, cpus_used=4)
    idle = await a_node(store, cpus_used=0)
    missing = await a_node(store, state=node_service_pb2.NODE_STATE_MISSING)

    reply = await servicer.GetClusterResources(
        node_service_pb2.GetClusterResourcesRequest(), REQUEST
    )
    assert {busy, idle} <= set(reply.per_node) and missing not in reply.per_node
    assert reply.per_node[busy].cpu_available == 4  # 4 CPUs x 2, 4 used
    assert reply.per_node[idle].cpu_available == 8
    assert reply.per_node[idle].ram_available == 4000  # 5000 free, 1000 kept
    assert reply.per_node[idle].instances_active == 1
    assert reply.total.cpu_available == before.total.cpu_available + 12
    assert reply.total.ram_available == before.total.ram_available + 8000


async def test_a_sample_that_fails_is_tried_again(store: Store, tmp_path: Any) -> None:
    name = await a_node(store)
    facts.instances_dir(tmp_path).mkdir()
    calls: list[int] = []

    def sample() -> facts.Capacity:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("/proc went away")
        return facts.read_capacity(tmp_path, [])

    sink = RecordedEvents()
    resources = Resources(
        node=name, state_dir=tmp_path, sample=sample, store=store, emitter=sink, interval=0.05
    )
    running = asyncio.create_task(resources.run())
    try:
        for _ in range(200):
            if await store.get(key("processmetrics", name)) is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        running.cancel()
    assert await store.get(key("processmetrics", name)) is not None
    assert len(calls) >= 2 and sink.events[0].message == MESSAGE


async def test_only_the_system_namespace_may_ask(servicer: NodeServicer) -> None:
    token = _caller.set(Caller(namespace="tenant", key_name="k", nonce=""))
    try:
        for call in (
            servicer.GetNodeProcessMetrics(ProcessMetrics(node="any"), REQUEST),
            servicer.GetClusterResources(CLUSTER, REQUEST),
        ):
            with pytest.raises(errors.Unauthenticated, match="unauthorized"):
                await call
    finally:
        _caller.reset(token)
