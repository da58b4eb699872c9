"""services/api/clients/outbox.py with a real etcd (this module's own: a
sweep reads every outbox entry), a real eventlog (its servicer and SQLite
store) and a real scheduler, both served here, and two api replicas: a
create's and a delete's events are written with them, reach the eventlog
once, and leave no entry behind; those of a replica that died right after
its commit are delivered by a sweep, once, however many replicas sweep."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import grpc
import pytest
from sfmesh.v1 import (
    eventlog_service_pb2,
    eventlog_service_pb2_grpc,
    instance_pb2,
    instance_service_pb2,
    node_service_pb2,
    records_pb2,
    scheduler_service_pb2_grpc,
)

from services.api.artifacts.bases import Bases
from services.api.artifacts.finding import Finder
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.clients.outbox import GRACE, KIND, Outbox
from services.api.clients.scheduler import Scheduler
from services.api.instances.agent_operations import AgentOperations
from services.api.instances.browser_console import BrowserConsole
from services.api.instances.cache import InstanceCache
from services.api.instances.creation import Creation
from services.api.instances.deletion import Finisher
from services.api.instances.hotplug import Hotplug
from services.api.instances.idempotency import IdempotencyKeys
from services.api.instances.lookup import InstanceLookup
from services.api.instances.servicer import InstanceServicer
from services.api.instances.snapshots import Snapshots
from services.api.instances.validation import Limits
from services.api.namespaces.revocation import Revocation
from services.api.namespaces.store import NamespaceStore
from services.api.networks.store import NetworkStore
from services.common import instance_states as states
from services.common.events import EventEmitter
from services.common.instance_follower import InstanceFollower
from services.common.instance_store import InstanceStore
from services.common.interceptors import _caller
from services.common.main import service_authority
from services.common.presence import presence_key
from services.common.store import Put, Store, key, kind_prefix
from services.common.tokens import Caller, InternalCredentials
from services.common.transport import Transport
from services.eventlog.servicer import EventLogServicer
from services.eventlog.storage import EventStore
from services.eventlog.stores import open_store
from services.eventlog.writer import Writer
from services.scheduler.node_records import Timing
from services.scheduler.placement import Policy
from services.scheduler.registry import Capacity, Registry
from tests.meshes import started_etcd
from tests.schedulers import build_scheduler

NAMESPACE, NODE = "outbox", "outbox-node"
CREATED = ["db record created", "set attribute", "set attribute", "create request from REST API"]
"""The messages of a create's events (reference §7.3), in order."""
ASKED = ["delete request from REST API", "set attribute"]
"""A DELETE's: its audit, `delete-wait`."""
ENDED = ["deleted with its node", "set attribute"]
"""The end of a delete: its audit, `deleted`."""


@dataclass
class Replica:
    """One api process's side of the outbox."""

    emitter: EventEmitter
    outbox: Outbox
    creation: Creation
    finisher: Finisher
    servicer: InstanceServicer


@dataclass
class Mesh:
    store: Store
    instances: InstanceStore
    eventlog: EventStore
    live: Replica
    other: Replica
    """A second live replica."""
    dead: Replica
    """A replica whose process stopped right after its commits: its emitter
    is closed, so nothing it writes is ever emitted or spooled."""


@pytest.fixture(scope="module")
def own_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with started_etcd(tmp_path_factory.mktemp("outbox-etcd")) as address:
        yield address


@pytest.fixture(scope="module")
async def mesh(own_etcd: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    folder = tmp_path_factory.mktemp("outbox")
    store = Store(own_etcd)
    eventlog = open_store(str(folder / "events.db"))
    writer = Writer(eventlog)
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    address = f"127.0.0.1:{port}"
    eventlog_service_pb2_grpc.add_EventLogServiceServicer_to_server(
        EventLogServicer(eventlog, writer), server
    )
    emitters = [
        EventEmitter(
            address=address,
            producer_id=f"api-{name}",
            spool_dir=folder / name,
            fqdn=f"{name}.example",
            credentials=lambda: (),
            transport=Transport(),
        )
        for name in ("live", "other", "dead", "scheduler")
    ]
    for emitter in emitters:
        await emitter.start()
    registry = Registry()
    registry.connect(NODE)
    registry.report(NODE, Capacity(64, 0, 1 << 20, 1 << 20, 10_000, 0.0))
    placing, leadership = build_scheduler(
        store,
        address,
        registry=registry,
        emitter=emitters[-1],
        policy=Policy(),
        timing=Timing(),
        placed=InstanceFollower(InstanceStore(store), lambda instance: False),
    )
    scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server(placing, server)
    node = records_pb2.NodeRecord(name=NODE, state=node_service_pb2.NODE_STATE_CREATED)
    namespace = records_pb2.NamespaceRecord(name=NAMESPACE, state="created")
    assert await store.commit(
        [
            Put(key("node", NODE), node.SerializeToString()),
            Put(presence_key(NODE), b""),
            Put(key("namespace", NAMESPACE), namespace.SerializeToString()),
        ]
    )
    await server.start()
    await leadership.start(placing)
    credentials = InternalCredentials(service_authority(folder, Transport()), "api-test")
    scheduler = Scheduler(address, credentials, store, transport=Transport())
    node_agents = NodeAgents(store, credentials, transport=Transport())
    instances, namespaces = InstanceStore(store), NamespaceStore(store)
    networks, artifacts = NetworkStore(store), ArtifactStore(store)
    lookup = ArtifactLookup(artifacts, namespaces, instances)
    finder = Finder(artifacts, lookup)
    cache = InstanceCache(store)

    def replica(emitter: EventEmitter) -> Replica:
        """An api replica's instance handlers, as services/api/server.py builds them."""
        outbox = Outbox(store, emitter)
        events = Events(emitter, address, credentials, transport=Transport())
        creation = Creation(
            instances,
            namespaces,
            outbox,
            IdempotencyKeys(store),
            Limits(max_cpus=4),
            scheduler,
            networks,
            Bases(artifacts, lookup, finder),
        )
        finisher = Finisher(instances, networks, events, artifacts, outbox)
        snapshots = Snapshots(
            InstanceLookup(instances, cache), artifacts, lookup, finder, events, node_agents
        )
        servicer = InstanceServicer(
            instances,
            namespaces,
            events,
            outbox,
            node_agents,
            creation,
            finisher,
            cache,
            snapshots,
            Hotplug(
                InstanceLookup(instances, cache),
                instances,
                networks,
                store,
                outbox,
                events,
                node_agents,
            ),
            lambda node: None,
            browser_console=BrowserConsole(
                lookup=InstanceLookup(instances, cache),
                instances=instances,
                store=store,
                events=events,
                node_agents=node_agents,
                check_caller=Revocation(namespaces).check,
                secret="console-test-secret-of-32-bytes!",
                ttl=60,
            ),
            agent_operations=AgentOperations(
                InstanceLookup(instances, cache), store, events, node_agents, lookup
            ),
        )
        return Replica(emitter, outbox, creation, finisher, servicer)

    live, other, dead = (replica(emitter) for emitter in emitters[:-1])
    await dead.emitter.close(timeout=0)
    try:
        yield Mesh(store, instances, eventlog, live, other, dead)
    finally:
        for emitter in emitters:
            await emitter.close(timeout=0)
        await node_agents.close()
        await scheduler.close()
        await leadership.close()
        await server.stop(None)
        writer.close()
        eventlog.close()
        await store.close()


def request(**fields: object) -> instance_service_pb2.CreateInstanceRequest:
    settings: dict[str, object] = {
        "name": f"o{uuid.uuid4().hex[:8]}",
        "cpus": 1,
        "memory": 256,
        "disk": [instance_pb2.DiskSpec(size=2)],
    }
    settings.update(fields)
    return instance_service_pb2.CreateInstanceRequest(**settings)  # type: ignore[arg-type]


def stored_events(mesh: Mesh, instance_uuid: str) -> list[str]:
    """The messages of an instance's events the api recorded in the
    eventlog (not the scheduler's), oldest first."""
    found = mesh.eventlog.newest("instance", instance_uuid, limit=-1)
    return [s.event.message for s in reversed(found) if s.event.fqdn != "scheduler.example"]


async def entries(mesh: Mesh) -> list[eventlog_service_pb2.EventRecord]:
    """The events of every outbox entry in etcd."""
    return [
        event
        async for item in mesh.store.list_prefix(kind_prefix(KIND))
        for event in eventlog_service_pb2.RecordRequest.FromString(item.value).events
    ]


async def until(condition: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.05)


def as_tenant() -> None:
    """Serve what follows as a caller of the test's namespace."""
    _caller.set(Caller(namespace=NAMESPACE, key_name="k", nonce=""))


async def test_a_create_and_deletes_leave_no_entry_and_their_events_once(mesh: Mesh) -> None:
    as_tenant()
    instance = await mesh.live.creation.create(request())
    await mesh.live.servicer.DeleteInstance(
        instance_service_pb2.DeleteInstanceRequest(ref=instance.uuid),
        None,  # type: ignore[arg-type]
    )
    stored = await mesh.instances.get(instance.uuid)
    assert stored is not None
    assert await mesh.live.finisher.finish(stored, audit="deleted with its node", orphaned=True)

    async def delivered() -> bool:
        return not await entries(mesh)

    await until(delivered)
    assert stored_events(mesh, instance.uuid) == [*CREATED, *ASKED, *ENDED]


async def test_a_dead_replicas_create_is_delivered_once_by_sweeps(mesh: Mesh) -> None:
    as_tenant()
    first = request(idempotency_key=f"k{uuid.uuid4().hex}")
    instance = await mesh.dead.creation.create(first)
    assert await mesh.instances.get(instance.uuid) is not None
    held = await entries(mesh)
    assert [event.message for event in held] == CREATED
    assert stored_events(mesh, instance.uuid) == []

    # The client retries on a live replica: the first instance, and no event more.
    assert (await mesh.live.creation.create(first)).uuid == instance.uuid
    assert await mesh.live.outbox.sweep(GRACE) == 0  # within its writer's grace
    assert len(await entries(mesh)) == len(CREATED)

    # Both live replicas sweep at once: each event is stored once.
    swept = await asyncio.gather(mesh.live.outbox.sweep(0), mesh.other.outbox.sweep(0))
    assert sum(swept) >= 1
    assert await entries(mesh) == []
    assert stored_events(mesh, instance.uuid) == CREATED
    found = mesh.eventlog.newest("instance", instance.uuid, limit=-1)
    assert {stored.event.fqdn for stored in found} == {"dead.example", "scheduler.example"}

    # Sweeping again, or any process emitting them again, adds nothing.
    assert await mesh.other.outbox.sweep(0) == 0
    for record in held:
        mesh.live.emitter.emit_record(record)
    assert await mesh.live.emitter.flushed(5.0)
    assert stored_events(mesh, instance.uuid) == CREATED


async def test_a_dead_replicas_deletes_are_delivered_by_a_sweep(mesh: Mesh) -> None:
    as_tenant()
    instance = await mesh.live.creation.create(request())
    await mesh.dead.servicer.DeleteInstance(
        instance_service_pb2.DeleteInstanceRequest(ref=instance.uuid),
        None,  # type: ignore[arg-type]
    )
    stored = await mesh.instances.get(instance.uuid)
    assert stored is not None and stored.record.instance.state == states.DELETE_WAIT
    assert await mesh.dead.finisher.finish(stored, audit="deleted with its node", orphaned=True)
    assert len(await entries(mesh)) >= len(ASKED) + len(ENDED)

    await mesh.other.outbox.sweep(0)
    assert await entries(mesh) == []
    assert stored_events(mesh, instance.uuid) == [*CREATED, *ASKED, *ENDED]
