"""The scheduler over real gRPC against a real etcd: fake node agents open
ReportNode streams with an internal token; the api's calls are made directly."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sfmesh.v1 import (
    event_pb2,
    instance_pb2,
    node_service_pb2,
    records_pb2,
    scheduler_service_pb2,
    scheduler_service_pb2_grpc,
)

from services.common import instance_states as states
from services.common.instance_follower import InstanceFollower
from services.common.instance_store import InstanceStore
from services.common.interceptors import AuthInterceptor, RequestInterceptor
from services.common.main import service_authority
from services.common.presence import presence_key
from services.common.scheduler_policy import POLICY_KEY
from services.common.secrets import load_or_create_secret
from services.common.store import Delete, Put, Store, key
from services.common.tokens import TokenAuthority
from services.common.transport import Transport
from services.scheduler.leadership import Leadership
from services.scheduler.node_records import Timing
from services.scheduler.placement import Policy
from services.scheduler.registry import Registry
from services.scheduler.servicer import SchedulerServicer
from tests.event_sinks import RecordedEvents
from tests.metric_samples import sample
from tests.schedulers import build_scheduler, forget_schedulers

POLICY = Policy(cpu_overcommit_ratio=2.0, ram_reserved_mib=256, min_free_disk_gib=1)
TIMING = Timing(report_interval=1, record_interval=0.5)


@dataclass
class Mesh:
    stub: scheduler_service_pb2_grpc.SchedulerServiceStub
    metadata: tuple[tuple[str, str], ...]
    store: Store
    recorder: RecordedEvents
    servicer: SchedulerServicer
    placed: InstanceFollower
    leadership: Leadership


@pytest.fixture
async def mesh(etcd: str, tmp_path: Path) -> AsyncIterator[Mesh]:
    """The scheduler with TIMING, leading on its own."""
    authority = service_authority(tmp_path, Transport())
    store = Store(etcd)
    await forget_schedulers(store)
    recorder = RecordedEvents()
    placed = InstanceFollower(InstanceStore(store), lambda instance: bool(instance.node))
    following = asyncio.create_task(placed.run())
    server = grpc.aio.server(interceptors=[RequestInterceptor(), AuthInterceptor(authority)])
    port = server.add_insecure_port("127.0.0.1:0")
    servicer, leadership = build_scheduler(
        store,
        f"127.0.0.1:{port}",
        registry=Registry(),
        emitter=recorder,
        policy=POLICY,
        timing=TIMING,
        placed=placed,
    )
    scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server(servicer, server)
    await server.start()
    await leadership.start(servicer)
    assert leadership.leader == f"127.0.0.1:{port}"
    # A client holding the same service.key, as a node agent or the api would.
    client = TokenAuthority(internal_secret=load_or_create_secret(tmp_path / "service.key"))
    metadata = (("authorization", f"Bearer {client.issue_internal('node_agent')}"),)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Mesh(
        scheduler_service_pb2_grpc.SchedulerServiceStub(channel),
        metadata,
        store,
        recorder,
        servicer,
        placed,
        leadership,
    )
    await channel.close()
    await leadership.close()
    await server.stop(0)
    following.cancel()
    await servicer.close()
    await store.close()


async def take_the_lead_again(mesh: Mesh) -> None:
    """Step down and campaign again, as a scheduler taking over would."""
    await mesh.leadership.close()
    await mesh.leadership.start(mesh.servicer)


def report(
    name: str = "", *uuids: str, memory_free_mib: int = 2304, cpus_used: int = 0
) -> scheduler_service_pb2.ReportNodeRequest:
    """A report; with `name`, the first report of a stream. 2304 MiB free fits
    two 1 GiB instances over the 256 MiB host reservation."""
    message = scheduler_service_pb2.ReportNodeRequest(
        cpus_total=4,
        cpus_used=cpus_used,
        memory_total_mib=8192,
        memory_free_mib=memory_free_mib,
        disk_free_gib=100,
        load_1m=0.2,
        instance_uuids=list(uuids),
    )
    if name:
        message.facts.CopyFrom(
            scheduler_service_pb2.HypervisorFacts(node=name, address="127.0.0.1:1", kvm=False)
        )
    return message


class Node:
    """A fake node agent holding one report stream."""

    def __init__(self, mesh: Mesh, name: str) -> None:
        self.name = name
        self.call = mesh.stub.ReportNode(metadata=mesh.metadata)

    async def send(self, message: scheduler_service_pb2.ReportNodeRequest) -> int:
        await self.call.write(message)
        reply = await self.call.read()
        assert isinstance(reply, scheduler_service_pb2.ReportNodeResponse)
        return reply.report_interval_seconds

    async def close(self) -> None:
        await self.call.done_writing()
        assert await self.call.read() is grpc.aio.EOF


async def present(mesh: Mesh, name: str, *, lease: int = 0) -> None:
    """Write `name`'s presence key, as its node agent does (under `lease`,
    if given; the tests delete it to stand for a lease that expired)."""
    await mesh.store.commit([Put(presence_key(name), b"127.0.0.1:1", lease=lease)])


async def vanish(mesh: Mesh, name: str) -> None:
    """`name`'s presence key goes, as when its lease expires."""
    await mesh.store.commit([Delete(presence_key(name))])


async def connect(mesh: Mesh, **fields: Any) -> Node:
    name = f"node-{uuid.uuid4().hex[:8]}"
    await present(mesh, name)
    node = Node(mesh, name)
    assert await node.send(report(node.name, **fields)) == TIMING.report_interval
    return node


async def state_becomes(mesh: Mesh, name: str, state: int, within: float = 5.0) -> float:
    """Wait until `name`'s record says `state`; the seconds it took."""
    started = time.monotonic()
    while (await record(mesh, name)).state != state:
        assert time.monotonic() - started < within, f"{name} never became {state}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def record(mesh: Mesh, name: str) -> records_pb2.NodeRecord:
    item = await mesh.store.get(key("node", name))
    assert item is not None
    return records_pb2.NodeRecord.FromString(item.value)


def place_request(
    placed_on: str | None = None, memory: int = 1024
) -> scheduler_service_pb2.PlaceInstanceRequest:
    return scheduler_service_pb2.PlaceInstanceRequest(
        instance_uuid=str(uuid.uuid4()),
        cpus=1,
        memory=memory,
        disk_gib=5,
        placed_on=placed_on,
        request_id="req-1",
    )


async def test_the_leader_publishes_the_policy_it_places_by(mesh: Mesh) -> None:
    item = await mesh.store.get(POLICY_KEY)
    assert item is not None
    published = records_pb2.SchedulerPolicyRecord.FromString(item.value)
    assert published == records_pb2.SchedulerPolicyRecord(
        cpu_overcommit_ratio=2.0, ram_reserved_mib=256, min_free_disk_gib=1
    )


async def test_report_registers_the_node_in_etcd(mesh: Mesh) -> None:
    node = await connect(mesh)
    stored = await record(mesh, node.name)
    assert stored.name == node.name
    assert stored.state == node_service_pb2.NODE_STATE_CREATED
    assert stored.facts.address == "127.0.0.1:1"
    assert stored.last_report.memory_free_mib == 2304
    assert stored.lastseen > 0
    await node.close()


async def test_record_is_rewritten_at_most_every_interval(mesh: Mesh) -> None:
    node = await connect(mesh)
    first = await mesh.store.get(key("node", node.name))
    assert first is not None
    await node.send(report(memory_free_mib=2000))
    again = await mesh.store.get(key("node", node.name))
    assert again is not None and again.mod_revision == first.mod_revision
    await asyncio.sleep(TIMING.record_interval)
    await node.send(report(memory_free_mib=1900))
    assert (await record(mesh, node.name)).last_report.memory_free_mib == 1900
    await node.close()


async def test_first_report_needs_facts(mesh: Mesh) -> None:
    call = mesh.stub.ReportNode(metadata=mesh.metadata)
    await call.write(report())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_calls_need_the_internal_token(mesh: Mesh) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request())
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_place_picks_a_node_and_emits_the_audit_trail(mesh: Mesh) -> None:
    small = await connect(mesh, memory_free_mib=1200)
    big = await connect(mesh, memory_free_mib=4000)
    request = place_request()
    placements = sample("sfmesh_scheduler_placements_total")
    reply = await mesh.stub.PlaceInstance(request, metadata=mesh.metadata)
    assert reply.node == big.name
    assert reply.reservation_id
    assert sample("sfmesh_scheduler_placements_total") == placements + 1
    audit = [e for e in mesh.recorder.events if e.event_type == event_pb2.EVENT_TYPE_AUDIT]
    assert {e[:2] for e in audit} == {("instance", request.instance_uuid)}
    messages = [e[3] for e in audit]
    assert messages[0] == "schedule initial candidates"
    assert messages[-1] == "schedule final candidates"
    ram = next(e[4] for e in audit if e[3] == "schedule have enough idle ram")
    assert ram["candidates"] == [big.name]
    assert ram["request-id"] == "req-1"
    assert small.name in ram["dropped"]
    assert mesh.recorder.events[-1].message == "schedule complete"
    await small.close()
    await big.close()


async def test_affinity_attracts_and_repels_by_the_namespaces_tags(mesh: Mesh) -> None:
    web, db = await connect(mesh), await connect(mesh)
    namespace = f"aff-{uuid.uuid4().hex[:6]}"
    placed = []
    for node, tags, owner in (
        (web, ["web"], namespace),
        (db, ["db"], namespace),
        (db, ["web"], "other"),
    ):
        instance = instance_pb2.Instance(
            uuid=str(uuid.uuid4()), node=node.name, namespace=owner, state=states.CREATED
        )
        instance.metadata.update({"tags": tags})
        assert await InstanceStore(mesh.store).create(records_pb2.InstanceRecord(instance=instance))
        placed.append(instance.uuid)
    try:
        # The scheduler follows placed instances through its etcd watch.
        for _ in range(500):
            if all(mesh.placed.get(u) for u in placed):
                break
            await asyncio.sleep(0.01)
        for weights, expected in (({"web": 50}, web), ({"web": -50}, db), ({"db": 10}, db)):
            request = place_request()
            request.namespace = namespace
            request.affinity.update(weights)
            reply = await mesh.stub.PlaceInstance(request, metadata=mesh.metadata)
            assert reply.node == expected.name, weights
            step = next(
                e.extra
                for e in mesh.recorder.events
                if e.object_uuid == request.instance_uuid
                and e.message == "schedule have highest affinity"
            )
            assert step["candidates"] == [expected.name]  # the other namespace's "web" counts not
    finally:
        await mesh.store.commit([Delete(key("instance", u)) for u in placed])
        await web.close()
        await db.close()


async def test_placements_in_flight_count_for_affinity(mesh: Mesh) -> None:
    """Two creates in a row, before either instance record exists: the
    second still sees the first's tags on the node it was given."""
    one, two = await connect(mesh), await connect(mesh)
    namespace = f"fly-{uuid.uuid4().hex[:6]}"
    try:
        first = place_request()
        first.namespace = namespace
        first.tags.append("db")
        anchor = (await mesh.stub.PlaceInstance(first, metadata=mesh.metadata)).node
        other = two.name if anchor == one.name else one.name
        for weight, expected in ((100, anchor), (-100, other)):  # +100 first: not by memory
            request = place_request()
            request.namespace = namespace
            request.affinity["db"] = weight
            reply = await mesh.stub.PlaceInstance(request, metadata=mesh.metadata)
            assert reply.node == expected, weight
        elsewhere = place_request()  # another namespace's tags count not
        elsewhere.namespace = f"{namespace}-b"
        elsewhere.affinity["db"] = 100
        await mesh.stub.PlaceInstance(elsewhere, metadata=mesh.metadata)
        step = next(
            e.extra
            for e in mesh.recorder.events
            if e.object_uuid == elsewhere.instance_uuid
            and e.message == "schedule have highest affinity"
        )
        assert not step.get("dropped")  # every node scores 0 for it
    finally:
        await one.close()
        await two.close()


async def test_concurrent_placements_never_overcommit(mesh: Mesh) -> None:
    node = await connect(mesh)
    results = await asyncio.gather(
        *(
            mesh.stub.PlaceInstance(place_request(node.name), metadata=mesh.metadata)
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    placed = [r for r in results if isinstance(r, scheduler_service_pb2.PlaceInstanceResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(placed) == 2 and len(refused) == 3
    error = refused[0]
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "No nodes with enough idle RAM"
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert retry.retry_delay.seconds == TIMING.report_interval
    await node.close()


async def test_release_frees_the_reservation(mesh: Mesh) -> None:
    node = await connect(mesh, memory_free_mib=1300)
    reply = await mesh.stub.PlaceInstance(place_request(), metadata=mesh.metadata)
    with pytest.raises(grpc.aio.AioRpcError):
        await mesh.stub.PlaceInstance(place_request(node.name), metadata=mesh.metadata)
    release = scheduler_service_pb2.ReleaseReservationRequest(reservation_id=reply.reservation_id)
    await mesh.stub.ReleaseReservation(release, metadata=mesh.metadata)
    await mesh.stub.ReleaseReservation(release, metadata=mesh.metadata)  # idempotent
    again = await mesh.stub.PlaceInstance(place_request(node.name), metadata=mesh.metadata)
    assert again.node == node.name
    await node.close()


async def test_a_report_of_the_instance_replaces_its_reservation(mesh: Mesh) -> None:
    node = await connect(mesh, memory_free_mib=2304)
    request = place_request()
    await mesh.stub.PlaceInstance(request, metadata=mesh.metadata)
    # The node now runs the instance: its own numbers count it, the reservation goes.
    await node.send(report("", request.instance_uuid, memory_free_mib=1280, cpus_used=1))
    reply = await mesh.stub.PlaceInstance(place_request(node.name), metadata=mesh.metadata)
    assert reply.node == node.name
    await node.close()


def refusals(reason: str) -> float:
    return sample("sfmesh_scheduler_refusals_total", reason=reason)


async def test_forced_unknown_node_is_not_found(mesh: Mesh) -> None:
    before = refusals("node_not_found")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request("ghost"), metadata=mesh.metadata)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "node not found: ghost"
    assert refusals("node_not_found") == before + 1


async def test_nothing_reporting_is_insufficient(mesh: Mesh) -> None:
    before = refusals("no_nodes")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request(), metadata=mesh.metadata)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.details() == "No nodes with metrics"
    assert refusals("no_nodes") == before + 1


async def test_invalid_request(mesh: Mesh) -> None:
    bad = scheduler_service_pb2.PlaceInstanceRequest(instance_uuid="x", cpus=0, memory=1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(bad, metadata=mesh.metadata)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_closed_stream_unschedules_and_a_lost_presence_marks_missing(
    mesh: Mesh,
) -> None:
    node = await connect(mesh)
    await node.close()
    # Awaited back for a while (its agent may be restarting): not final yet.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request(node.name), metadata=mesh.metadata)
    assert_not_final(raised.value)
    assert node.name in raised.value.details()
    assert (await record(mesh, node.name)).state == node_service_pb2.NODE_STATE_CREATED
    await vanish(mesh, node.name)
    await state_becomes(mesh, node.name, node_service_pb2.NODE_STATE_MISSING)
    with pytest.raises(grpc.aio.AioRpcError) as raised:  # gone: no longer awaited
        await mesh.stub.PlaceInstance(place_request(node.name), metadata=mesh.metadata)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    await present(mesh, node.name)
    await state_becomes(mesh, node.name, node_service_pb2.NODE_STATE_CREATED)
    node_events = [e.message for e in mesh.recorder.events if e.object_uuid == node.name]
    assert node_events == [
        "node created: its agent reported for the first time",
        "set attribute",
        "node missing: its presence lease expired",
        "set attribute",
        "node back: its agent holds its presence lease again",
        "set attribute",
    ]
    back = Node(mesh, node.name)
    await back.send(report(node.name))
    assert (await mesh.stub.PlaceInstance(place_request(), metadata=mesh.metadata)).node
    await back.close()


async def test_an_expired_lease_marks_missing_and_ends_the_stream(mesh: Mesh) -> None:
    name = f"node-{uuid.uuid4().hex[:8]}"
    lease = await mesh.store.grant(2)  # never kept alive: its agent "died"
    await present(mesh, name, lease=lease)
    node = Node(mesh, name)
    await node.send(report(name))
    took = await state_becomes(mesh, name, node_service_pb2.NODE_STATE_MISSING, within=6.0)
    assert took < 4.0
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await node.call.read()
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "holds no presence lease" in (raised.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request(name), metadata=mesh.metadata)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND  # not awaited: it is gone


async def test_a_report_without_presence_is_refused(mesh: Mesh) -> None:
    node = Node(mesh, f"node-{uuid.uuid4().hex[:8]}")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await node.send(report(node.name))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert await mesh.store.get(key("node", node.name)) is None


async def test_a_deleted_node_is_cut_off_refused_and_kept_deleted(mesh: Mesh) -> None:
    node = await connect(mesh)
    found = await mesh.store.get(key("node", node.name))
    assert found is not None
    deleted = records_pb2.NodeRecord.FromString(found.value)
    deleted.state = node_service_pb2.NODE_STATE_DELETED
    deleted.metadata["why"] = "retired"
    # What the api's DELETE writes: the record, and the presence key gone.
    assert await mesh.store.commit(
        [
            Put(found.key, deleted.SerializeToString(), found.mod_revision),
            Delete(presence_key(node.name)),
        ]
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await node.call.read()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request(node.name), metadata=mesh.metadata)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    # Its agent comes back: it holds its presence again and reports; refused.
    await present(mesh, node.name)
    again = Node(mesh, node.name)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await again.send(report(node.name))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"node {node.name} was deleted" in (raised.value.details() or "")
    kept = await record(mesh, node.name)
    assert kept.state == node_service_pb2.NODE_STATE_DELETED
    assert dict(kept.metadata) == {"why": "retired"}


async def test_a_report_keeps_the_apis_metadata(mesh: Mesh) -> None:
    node = await connect(mesh)
    found = await mesh.store.get(key("node", node.name))
    assert found is not None
    tagged = records_pb2.NodeRecord.FromString(found.value)
    tagged.metadata["rack"] = "b2"
    assert await mesh.store.commit([Put(found.key, tagged.SerializeToString(), found.mod_revision)])
    await asyncio.sleep(TIMING.record_interval)
    await node.send(report(memory_free_mib=1900))
    kept = await record(mesh, node.name)
    assert kept.last_report.memory_free_mib == 1900
    assert dict(kept.metadata) == {"rack": "b2"}
    await node.close()


async def test_a_new_leader_marks_created_nodes_without_presence_missing(mesh: Mesh) -> None:
    name = f"node-{uuid.uuid4().hex[:8]}"
    stale = records_pb2.NodeRecord(name=name, state=node_service_pb2.NODE_STATE_CREATED)
    await mesh.store.commit([Put(key("node", name), stale.SerializeToString())])
    await take_the_lead_again(mesh)
    # The lease expired while no one (or another) led: missing at once.
    assert (await record(mesh, name)).state == node_service_pb2.NODE_STATE_MISSING


def assert_not_final(error: grpc.aio.AioRpcError) -> None:
    """A refusal made while a created node has not reported: a 503 to retry
    after a report interval, not a 404 or 507."""
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details().startswith("not every node has reported yet (waiting for ")
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert any(detail.Unpack(info) for detail in status.details)
    assert (info.reason, info.metadata["http_status"]) == ("NODES_NOT_REPORTED", "503")
    assert any(detail.Unpack(retry) for detail in status.details)
    assert retry.retry_delay.seconds == 1


async def test_a_fresh_scheduler_awaits_its_created_nodes(mesh: Mesh) -> None:
    names = [f"node-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    await mesh.store.commit(
        [
            Put(
                key("node", name),
                records_pb2.NodeRecord(
                    name=name, state=node_service_pb2.NODE_STATE_CREATED
                ).SerializeToString(),
            )
            for name in names
        ]
    )
    for name in names:  # their agents live: they are awaited, not missing
        await present(mesh, name)
    await take_the_lead_again(mesh)
    not_reported, short = refusals("nodes_not_reported"), refusals("idle_ram")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request(), metadata=mesh.metadata)
    assert_not_final(raised.value)
    # One reports: what fits it is placed, though the other is still awaited.
    first = Node(mesh, names[0])
    await first.send(report(names[0]))
    assert (await mesh.stub.PlaceInstance(place_request(), metadata=mesh.metadata)).node == names[0]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request(memory=1 << 20), metadata=mesh.metadata)
    assert_not_final(raised.value)
    # The other stays away past the wait: refusals are final again.
    await asyncio.sleep(TIMING.awaited_for + 0.1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await mesh.stub.PlaceInstance(place_request(memory=1 << 20), metadata=mesh.metadata)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.details() == "No nodes with enough idle RAM"
    assert refusals("nodes_not_reported") == not_reported + 2
    assert refusals("idle_ram") == short + 1
    await first.close()


async def test_is_leader_while_this_replica_leads(mesh: Mesh) -> None:
    leading = sample("sfmesh_scheduler_is_leader")
    assert leading >= 1
    await mesh.leadership.close()
    assert sample("sfmesh_scheduler_is_leader") == leading - 1
    await mesh.leadership.start(mesh.servicer)
    assert sample("sfmesh_scheduler_is_leader") == leading
