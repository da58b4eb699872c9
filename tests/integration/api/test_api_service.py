"""The api's AuthService and InstanceService over real gRPC, on a real etcd.

The servers are built as services/api/server.py builds them (same servicers,
same interceptors, in that order), minus signals, on a free loopback port.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sfmesh.v1 import (
    artifact_pb2,
    auth_service_pb2,
    auth_service_pb2_grpc,
    instance_pb2,
    instance_service_pb2,
    instance_service_pb2_grpc,
    node_service_pb2,
    records_pb2,
    scheduler_service_pb2_grpc,
)

from services.api.artifacts.bases import Bases
from services.api.artifacts.deletion import ArtifactDeletion
from services.api.artifacts.finding import Finder
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.clients.outbox import Outbox
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
from services.api.namespaces.keys import SYSTEM, ensure_system_namespace, new_key_record
from services.api.namespaces.revocation import Revocation
from services.api.namespaces.servicer import AuthServicer
from services.api.namespaces.store import NamespaceStore
from services.api.networks.store import NetworkStore
from services.common import instance_states as states
from services.common.config import MeshConfig
from services.common.instance_follower import InstanceFollower
from services.common.instance_store import InstanceStore
from services.common.interceptors import AuthInterceptor, RequestInterceptor
from services.common.main import service_authority, service_emitter
from services.common.presence import presence_key
from services.common.secrets import load_or_create_secret
from services.common.store import Delete, Put, Store, key
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport
from services.scheduler.node_records import Timing
from services.scheduler.placement import Policy
from services.scheduler.registry import Capacity, Registry
from tests.schedulers import build_scheduler, forget_schedulers

RUN = uuid.uuid4().hex[:8]
NODE = f"t{RUN}-node"
"""Every instance and namespace these tests make carries this, so a shared etcd
can be cleaned of exactly them."""

Metadata = tuple[tuple[str, str], ...]


@dataclass
class Api:
    """A running api and what the tests need to talk to it."""

    state_dir: Path
    authority: TokenAuthority
    auth: auth_service_pb2_grpc.AuthServiceStub
    instances: instance_service_pb2_grpc.InstanceServiceStub
    system_key: str
    other_namespace: str
    other_key: str
    system_token: str = ""
    other_token: str = ""

    @property
    def system(self) -> Metadata:
        return bearer(self.system_token)

    @property
    def other(self) -> Metadata:
        return bearer(self.other_token)


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def name(suffix: str) -> str:
    return f"t{RUN}-{suffix}"


async def _system_key(store: Store, namespaces: NamespaceStore, state_dir: Path) -> str:
    """The key in `<state>/system.key`.

    When another test of this session already made the system namespace (so
    ensure_system_namespace wrote no file here), add a key of ours to it.
    """
    await ensure_system_namespace(namespaces, state_dir)
    path = state_dir / "system.key"
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(24)
    item = await store.get(key("namespace", SYSTEM))
    assert item is not None
    record = records_pb2.NamespaceRecord.FromString(item.value)
    record.keys.append(new_key_record(f"t{RUN}", secret))
    assert await store.commit(
        [Put(item.key, record.SerializeToString(), mod_revision=item.mod_revision)]
    )
    path.write_text(secret + "\n")
    return secret


async def _clean(store: Store, created_system: bool, other_namespace: str) -> None:
    """Remove what these tests wrote to the shared etcd."""
    instances = InstanceStore(store)
    mine = [
        stored.record.instance.uuid
        async for stored in instances.all()
        if stored.record.instance.name.startswith(f"t{RUN}-")
    ]
    doomed = [Delete(key("instance", u)) for u in mine]
    doomed.append(Delete(key("namespace", other_namespace)))
    doomed += [Delete(key("node", NODE)), Delete(presence_key(NODE))]
    if created_system:
        doomed.append(Delete(key("namespace", SYSTEM)))
    assert await store.commit(doomed)
    if created_system:
        return
    # Someone else's system namespace: take back only the key _system_key added.
    item = await store.get(key("namespace", SYSTEM))
    if item is not None:
        record = records_pb2.NamespaceRecord.FromString(item.value)
        kept = [k for k in record.keys if k.name != f"t{RUN}"]
        if len(kept) != len(record.keys):
            del record.keys[:]
            record.keys.extend(kept)
            put = Put(item.key, record.SerializeToString(), mod_revision=item.mod_revision)
            assert await store.commit([put])


def _bases(artifacts: ArtifactStore, store: Store) -> Bases:
    """Disk base resolution over the test's etcd."""
    lookup = ArtifactLookup(artifacts, NamespaceStore(store), InstanceStore(store))
    return Bases(artifacts, lookup, Finder(artifacts, lookup))


@pytest.fixture(scope="module")
async def api(etcd: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    state_dir = tmp_path_factory.mktemp("api-state")
    store = Store(etcd)
    namespaces = NamespaceStore(store)
    created_system = await namespaces.get(SYSTEM) is None
    system_key = await _system_key(store, namespaces, state_dir)

    other_namespace, other_key = f"t{RUN}-ns", secrets.token_urlsafe(24)
    assert await namespaces.create(
        records_pb2.NamespaceRecord(
            name=other_namespace, state="created", keys=[new_key_record("k1", other_key)]
        )
    )

    authority = service_authority(
        state_dir,
        Transport(),
        user_secret=load_or_create_secret(state_dir / "jwt.secret"),
        ttl_seconds=900,
    )
    # No eventlog runs here: events are spooled, and event reads are not tested.
    mesh = MeshConfig(state_dir, etcd=(etcd,), api="", scheduler="", eventlog="127.0.0.1:1")
    emitter = service_emitter(mesh, "api-test", authority)
    await emitter.start()
    events = Events(
        emitter, "127.0.0.1:1", InternalCredentials(authority, "api-test"), transport=Transport()
    )
    server = grpc.aio.server(interceptors=[RequestInterceptor(), AuthInterceptor(authority)])
    port = server.add_insecure_port("127.0.0.1:0")
    # A real scheduler in this process, with one node that has reported.
    await forget_schedulers(store)
    registry = Registry()
    registry.connect(NODE)
    registry.report(NODE, Capacity(64, 0, 1 << 20, 1 << 20, 10_000, 0.0))
    placing, leadership = build_scheduler(
        store,
        f"127.0.0.1:{port}",
        registry=registry,
        emitter=emitter,
        policy=Policy(),
        timing=Timing(),
        placed=InstanceFollower(InstanceStore(store), lambda instance: False),
    )
    scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server(placing, server)
    node = records_pb2.NodeRecord(name=NODE, state=node_service_pb2.NODE_STATE_CREATED)
    assert await store.commit(
        [Put(key("node", NODE), node.SerializeToString()), Put(presence_key(NODE), b"")]
    )
    scheduler = Scheduler(
        f"127.0.0.1:{port}",
        InternalCredentials(authority, "api-test"),
        store,
        transport=Transport(),
    )
    networks = NetworkStore(store)
    artifacts = ArtifactStore(store)
    outbox = Outbox(store, emitter)
    finisher = Finisher(InstanceStore(store), networks, events, artifacts, outbox)
    finishing = asyncio.create_task(finisher.run())
    cache = InstanceCache(store)
    caching = asyncio.create_task(cache.run())
    node_agents = NodeAgents(
        store, InternalCredentials(authority, "api-test"), transport=Transport()
    )
    artifact_lookup = ArtifactLookup(artifacts, namespaces, InstanceStore(store))
    snapshots = Snapshots(
        InstanceLookup(InstanceStore(store), cache),
        artifacts,
        artifact_lookup,
        Finder(artifacts, artifact_lookup),
        events,
        node_agents,
    )
    instance_service_pb2_grpc.add_InstanceServiceServicer_to_server(
        InstanceServicer(
            InstanceStore(store),
            namespaces,
            events,
            outbox,
            node_agents,
            Creation(
                InstanceStore(store),
                namespaces,
                outbox,
                IdempotencyKeys(store),
                Limits(max_cpus=4),
                scheduler,
                networks,
                _bases(artifacts, store),
            ),
            finisher,
            cache,
            snapshots,
            Hotplug(
                InstanceLookup(InstanceStore(store), cache),
                InstanceStore(store),
                networks,
                store,
                outbox,
                events,
                node_agents,
            ),
            lambda node: None,
            browser_console=BrowserConsole(
                lookup=InstanceLookup(InstanceStore(store), cache),
                instances=InstanceStore(store),
                store=store,
                events=events,
                node_agents=node_agents,
                check_caller=Revocation(namespaces).check,
                secret="console-test-secret-of-32-bytes!",
                ttl=60,
            ),
            agent_operations=AgentOperations(
                InstanceLookup(InstanceStore(store), cache),
                store,
                events,
                node_agents,
                ArtifactLookup(artifacts, namespaces, InstanceStore(store)),
            ),
        ),
        server,
    )
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(
        AuthServicer(namespaces, authority, ArtifactDeletion(artifacts, events)), server
    )
    await server.start()
    await leadership.start(placing)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    api = Api(
        state_dir=state_dir,
        authority=authority,
        auth=auth_service_pb2_grpc.AuthServiceStub(channel),
        instances=instance_service_pb2_grpc.InstanceServiceStub(channel),
        system_key=system_key,
        other_namespace=other_namespace,
        other_key=other_key,
    )
    api.system_token = (await token(api, SYSTEM, system_key)).access_token
    api.other_token = (await token(api, other_namespace, other_key)).access_token
    try:
        yield api
    finally:
        finishing.cancel()
        caching.cancel()
        await channel.close()
        await scheduler.close()
        await leadership.close()
        await server.stop(None)
        await emitter.close(timeout=0)
        await _clean(store, created_system, other_namespace)
        await store.close()


async def token(api: Api, namespace: str, key: str) -> auth_service_pb2.CreateTokenResponse:
    return await api.auth.CreateToken(
        auth_service_pb2.CreateTokenRequest(namespace=namespace, key=key), timeout=10
    )


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo in the call's `grpc-status-details-bin` trailer."""
    trailers = [k for k, _ in error.trailing_metadata() or ()]
    assert "grpc-status-details-bin" in trailers
    status = rpc_status.from_call(error)  # checks code and message agree with the trailer
    assert status is not None
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1
    assert infos[0].domain == "sfmesh"
    return infos[0]


async def refused(call: object) -> grpc.aio.AioRpcError:
    """The AioRpcError the awaited `call` ends with."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


def create_request(suffix: str, **fields: object) -> instance_service_pb2.CreateInstanceRequest:
    settings: dict[str, object] = {
        "name": name(suffix),
        "cpus": 1,
        "memory": 256,
        "disk": [instance_pb2.DiskSpec(size=2, base="cirros")],
    }
    settings.update(fields)
    return instance_service_pb2.CreateInstanceRequest(**settings)  # type: ignore[arg-type]


async def create(
    api: Api, suffix: str, metadata: Metadata | None = None, **fields: object
) -> instance_pb2.Instance:
    return await api.instances.CreateInstance(
        create_request(suffix, **fields), metadata=metadata or api.system, timeout=10
    )


async def listed(
    api: Api, metadata: Metadata, *, all: bool = False
) -> dict[str, instance_pb2.Instance]:
    reply = await api.instances.ListInstances(
        instance_service_pb2.ListInstancesRequest(all=all), metadata=metadata, timeout=10
    )
    return {i.uuid: i for i in reply.instances}


async def get(api: Api, ref: str, metadata: Metadata) -> instance_pb2.Instance:
    return await api.instances.GetInstance(
        instance_service_pb2.GetInstanceRequest(ref=ref), metadata=metadata, timeout=10
    )


# --- AuthService.CreateToken (reference §5.1) ----------------------------


async def test_create_token_with_system_key(api: Api) -> None:
    assert api.system_key == (api.state_dir / "system.key").read_text().strip()
    reply = await token(api, SYSTEM, api.system_key)
    assert reply.token_type == "Bearer"
    assert reply.expires_in == 900
    caller = api.authority.verify(reply.access_token, internal=False)
    assert caller.namespace == SYSTEM
    assert not caller.internal


async def test_create_token_bad_key(api: Api) -> None:
    error = await refused(token(api, SYSTEM, "not-the-key"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "unauthorized"
    info = error_info(error)
    assert info.metadata["http_status"] == "401"
    assert info.reason == "BAD_KEY"


async def test_create_token_other_namespace_key_is_not_system_key(api: Api) -> None:
    error = await refused(token(api, SYSTEM, api.other_key))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_create_token_unknown_namespace(api: Api) -> None:
    error = await refused(token(api, f"t{RUN}-nope", api.system_key))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "namespace not found"
    assert error_info(error).metadata["http_status"] == "404"


async def test_create_token_missing_namespace(api: Api) -> None:
    error = await refused(token(api, "", api.system_key))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "missing namespace in request"
    assert error_info(error).metadata["http_status"] == "400"


async def test_create_token_missing_key(api: Api) -> None:
    error = await refused(token(api, SYSTEM, ""))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "missing key in request"


# --- authentication of user RPCs (reference §5.4) -------------------------


async def test_list_without_token(api: Api) -> None:
    error = await refused(
        api.instances.ListInstances(instance_service_pb2.ListInstancesRequest(), timeout=10)
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "Missing Authorization Header"
    info = error_info(error)
    assert info.metadata["http_status"] == "401"
    assert info.reason == "NO_TOKEN"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "Basic abc",
            "Missing 'Bearer' type in 'Authorization' header. "
            "Expected 'Authorization: Bearer <JWT>'",
        ),
        (
            "Bearer",
            "Missing 'Bearer' type in 'Authorization' header. "
            "Expected 'Authorization: Bearer <JWT>'",
        ),
        ("Bearer not.a.jwt", "invalid JWT in Authorization header"),
    ],
)
async def test_list_with_bad_authorization(api: Api, header: str, message: str) -> None:
    error = await refused(
        api.instances.ListInstances(
            instance_service_pb2.ListInstancesRequest(),
            metadata=(("authorization", header),),
            timeout=10,
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == message
    assert error_info(error).metadata["http_status"] == "401"


async def test_expired_token(api: Api) -> None:
    expired = TokenAuthority(
        internal_secret="unused-" + "x" * 40,
        user_secret=(api.state_dir / "jwt.secret").read_text().strip(),
        ttl_seconds=-10,
    ).issue_user(SYSTEM, "system", "")
    error = await refused(
        api.instances.ListInstances(
            instance_service_pb2.ListInstancesRequest(), metadata=bearer(expired), timeout=10
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "Signature has expired"


async def test_internal_token_refused_by_public_rpc(api: Api) -> None:
    internal = api.authority.issue_internal("test")
    error = await refused(
        api.instances.ListInstances(
            instance_service_pb2.ListInstancesRequest(), metadata=bearer(internal), timeout=10
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(error).metadata["http_status"] == "401"


# --- the instance lifecycle (reference §1.1, §1.5) ------------------------


async def test_create_get_list_delete(api: Api, etcd: str) -> None:
    created = await create(api, "life", placed_on=NODE)
    assert created.name == name("life")
    assert created.namespace == SYSTEM
    assert created.state == states.INITIAL
    assert created.power_state == instance_pb2.POWER_STATE_INITIAL
    assert created.requested_placement == NODE
    assert created.node == NODE
    assert list(created.side_channels) == ["sf-agent"]
    assert str(uuid.UUID(created.uuid)) == created.uuid

    assert await get(api, created.uuid, api.system) == created
    assert await get(api, created.uuid.upper(), api.system) == created
    assert await get(api, created.uuid.replace("-", ""), api.system) == created
    assert await get(api, name("life"), api.system) == created
    assert (await listed(api, api.system))[created.uuid] == created

    before = await delete(api, created.uuid)
    assert before == created
    assert before.state == states.INITIAL

    # Placed: it waits for its node agent, listed and found by name meanwhile.
    waiting = await get(api, name("life"), api.system)
    assert waiting.state == states.DELETE_WAIT
    assert (await listed(api, api.system))[created.uuid].state == states.DELETE_WAIT
    await asyncio.sleep(0.3)  # the finisher has seen it, and left it waiting
    assert (await get(api, created.uuid, api.system)).state == states.DELETE_WAIT
    # A second delete is accepted while it waits (reference §1.5).
    assert (await delete(api, created.uuid)).state == states.DELETE_WAIT

    await torn_down(etcd, created.uuid)
    after = await until_deleted(api, created.uuid)
    assert after.power_state == instance_pb2.POWER_STATE_OFF
    assert after.name == created.name

    assert created.uuid not in await listed(api, api.system)
    assert (await listed(api, api.system, all=True))[created.uuid].state == states.DELETED

    # Deleted instances are found by UUID only, never by name.
    error = await refused(get(api, name("life"), api.system))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "instance not found"

    error = await refused(delete(api, created.uuid))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "instance not found"
    assert error_info(error).metadata["http_status"] == "404"


async def delete(api: Api, ref: str) -> instance_pb2.Instance:
    return await api.instances.DeleteInstance(
        instance_service_pb2.DeleteInstanceRequest(ref=ref), metadata=api.system, timeout=10
    )


async def torn_down(etcd: str, uuid: str) -> None:
    """What the node agent hosting an instance in `delete-wait` writes once
    its domain, disks and share of networks are gone (none runs here)."""

    def mark(record: records_pb2.InstanceRecord) -> None:
        record.torn_down_at = time.time()

    store = Store(etcd)
    try:
        instances = InstanceStore(store)
        stored = await instances.get(uuid)
        assert stored is not None
        await instances.update(stored, mark)
    finally:
        await store.close()


async def until_deleted(api: Api, uuid: str, within: float = 5.0) -> instance_pb2.Instance:
    deadline = time.monotonic() + within
    while (found := await get(api, uuid, api.system)).state != states.DELETED:
        assert time.monotonic() < deadline, f"{uuid} is still {found.state}"
        await asyncio.sleep(0.02)
    return found


async def test_delete_by_name(api: Api, etcd: str) -> None:
    created = await create(api, "by-name")
    before = await delete(api, name("by-name"))
    assert before.uuid == created.uuid
    assert (await get(api, created.uuid, api.system)).state == states.DELETE_WAIT
    await torn_down(etcd, created.uuid)
    await until_deleted(api, created.uuid)


async def test_an_unplaced_instance_is_deleted_at_once(api: Api, etcd: str) -> None:
    """Nothing hosts it, so nothing is to be torn down (deletion.py)."""
    record = records_pb2.InstanceRecord(
        instance=instance_pb2.Instance(
            uuid=str(uuid.uuid4()), name=name("unplaced"), namespace=SYSTEM, state=states.INITIAL
        )
    )
    store = Store(etcd)
    try:
        assert await InstanceStore(store).create(record)
    finally:
        await store.close()
    assert (await delete(api, record.instance.uuid)).state == states.INITIAL
    after = await get(api, record.instance.uuid, api.system)
    assert after.state == states.DELETED
    assert after.power_state == instance_pb2.POWER_STATE_OFF


async def test_get_unknown(api: Api) -> None:
    for ref in (str(uuid.uuid4()), name("never-made")):
        error = await refused(get(api, ref, api.system))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() == "instance not found"


async def test_delete_namespace_checks(api: Api) -> None:
    created = await create(api, "ns-check")
    missing = await refused(
        api.instances.DeleteInstance(
            instance_service_pb2.DeleteInstanceRequest(
                ref=created.uuid, namespace=f"t{RUN}-missing"
            ),
            metadata=api.system,
            timeout=10,
        )
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert missing.details() == "namespace not found"
    wrong = await refused(
        api.instances.DeleteInstance(
            instance_service_pb2.DeleteInstanceRequest(
                ref=created.uuid, namespace=api.other_namespace
            ),
            metadata=api.system,
            timeout=10,
        )
    )
    assert wrong.code() == grpc.StatusCode.NOT_FOUND
    assert wrong.details() == "instance not in namespace"
    assert (await get(api, created.uuid, api.system)).state == states.INITIAL

    ok = await api.instances.DeleteInstance(
        instance_service_pb2.DeleteInstanceRequest(ref=created.uuid, namespace=SYSTEM),
        metadata=api.system,
        timeout=10,
    )
    assert ok.uuid == created.uuid


async def test_ambiguous_name(api: Api) -> None:
    first = await create(api, "twin")
    second = await create(api, "twin")
    assert first.uuid != second.uuid
    error = await refused(get(api, name("twin"), api.system))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        error.details()
        == f'multiple instances have the name "{name("twin")}" in namespace "system"'
    )
    assert error_info(error).metadata["http_status"] == "400"
    # Either is still reachable by UUID.
    assert (await get(api, second.uuid, api.system)).uuid == second.uuid


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"name": "-bad"}, grpc.StatusCode.INVALID_ARGUMENT, None),
        ({"disk": []}, grpc.StatusCode.INVALID_ARGUMENT, "instance must specify at least one disk"),
        ({"cpus": 0}, grpc.StatusCode.INVALID_ARGUMENT, "cpus must be between 1 and 4096, not 0"),
        (
            {"cpus": 5},
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Requested vCPUs exceeds vCPU limit (4 per instance)",
        ),
        (
            {"secure_boot": True},
            grpc.StatusCode.INVALID_ARGUMENT,
            "secure boot requires UEFI be enabled",
        ),
        ({"user_data": "é"}, grpc.StatusCode.INVALID_ARGUMENT, "user_data must be valid base64"),
        (
            {"network": [instance_pb2.NetworkSpec(network_uuid="net-1")]},
            grpc.StatusCode.NOT_FOUND,
            "network net-1 not found",
        ),
        ({"namespace": f"t{RUN}-missing"}, grpc.StatusCode.NOT_FOUND, "namespace not found"),
        (
            {"placed_on": f"t{RUN}-nowhere"},
            grpc.StatusCode.NOT_FOUND,
            "Specified node does not exist",
        ),
        (
            {"memory": 1 << 21},
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "No nodes with enough idle RAM",
        ),
    ],
)
async def test_refused_create_leaves_nothing(
    api: Api, fields: dict[str, object], code: grpc.StatusCode, message: str | None
) -> None:
    before = await listed(api, api.system, all=True)
    error = await refused(
        api.instances.CreateInstance(
            create_request("refused", **fields), metadata=api.system, timeout=10
        )
    )
    assert error.code() == code
    if message is not None:
        assert error.details() == message
    http = {"INVALID_ARGUMENT": "400", "NOT_FOUND": "404", "RESOURCE_EXHAUSTED": "507"}
    assert error_info(error).metadata["http_status"] == http[code.name]
    assert await listed(api, api.system, all=True) == before


# --- namespaces and visibility (reference §5.5) ---------------------------


async def test_other_namespace_cannot_see_system_instance(api: Api) -> None:
    hidden = await create(api, "hidden")
    for ref in (hidden.uuid, name("hidden")):
        error = await refused(get(api, ref, api.other))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() == "instance not found"
    assert hidden.uuid not in await listed(api, api.other, all=True)
    error = await refused(
        api.instances.DeleteInstance(
            instance_service_pb2.DeleteInstanceRequest(ref=hidden.uuid),
            metadata=api.other,
            timeout=10,
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (await get(api, hidden.uuid, api.system)).state == states.INITIAL


async def test_namespace_sees_own_and_system_sees_all(api: Api) -> None:
    own = await create(api, "own", metadata=api.other)
    assert own.namespace == api.other_namespace
    mine = await listed(api, api.other, all=True)
    assert own.uuid in mine
    assert {i.namespace for i in mine.values()} == {api.other_namespace}
    assert await get(api, name("own"), api.other) == own
    assert (await listed(api, api.system))[own.uuid].namespace == api.other_namespace
    assert await get(api, own.uuid, api.system) == own


async def test_only_system_creates_elsewhere(api: Api) -> None:
    placed = await create(api, "for-other", namespace=api.other_namespace)
    assert placed.namespace == api.other_namespace
    assert (await get(api, placed.uuid, api.other)).uuid == placed.uuid

    error = await refused(create(api, "into-system", metadata=api.other, namespace=SYSTEM))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "namespace not found"


# --- the request interceptor ---------------------------------------------


async def test_request_id_echoed_and_logged(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    rid = f"t{RUN}-request"
    caplog.set_level(logging.INFO, logger="sfmesh.requests")
    call = api.instances.ListInstances(
        instance_service_pb2.ListInstancesRequest(),
        metadata=(*api.system, ("x-request-id", rid)),
        timeout=10,
    )
    await call
    assert ("x-request-id", rid) in list(await call.trailing_metadata() or ())
    lines = [r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == rid]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["method"] == "/sfmesh.v1.InstanceService/ListInstances"
    assert fields["code"] == "OK"
    assert fields["duration_ms"] >= 0
    assert "error" not in fields


async def test_created_record_carries_request_id(api: Api, etcd: str) -> None:
    rid = f"t{RUN}-create-request"
    created = await create(api, "rid", metadata=(*api.system, ("x-request-id", rid)))
    store = Store(etcd)
    try:
        stored = await InstanceStore(store).get(created.uuid)
    finally:
        await store.close()
    assert stored is not None
    assert stored.record.create_request_id == rid
    assert stored.record.instance == created
    assert stored.record.created_at > 0


async def test_failed_request_logged_with_error(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    rid = f"t{RUN}-failing-request"
    caplog.set_level(logging.INFO, logger="sfmesh.requests")
    await refused(
        api.instances.GetInstance(
            instance_service_pb2.GetInstanceRequest(ref=name("absent")),
            metadata=(*api.system, ("x-request-id", rid)),
            timeout=10,
        )
    )
    lines = [r for r in caplog.records if getattr(r, "fields", {}).get("request_id") == rid]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["code"] == "NOT_FOUND"
    assert fields["error"] == "instance not found"


async def test_request_id_echoed_on_errors(api: Api) -> None:
    rid = f"t{RUN}-error-request"
    error = await refused(
        api.instances.GetInstance(
            instance_service_pb2.GetInstanceRequest(ref=name("absent")),
            metadata=(*api.system, ("x-request-id", rid)),
            timeout=10,
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert ("x-request-id", rid) in list(error.trailing_metadata() or ())


# --- snapshots (reference §7.1) --------------------------------------------


async def made_created(etcd: str, uuid: str, *disks: instance_pb2.Disk) -> None:
    """What the node agent writes once the instance runs (none runs here)."""

    def mark(record: records_pb2.InstanceRecord) -> None:
        record.instance.state = states.CREATED
        record.instance.disks.extend(disks)

    store = Store(etcd)
    try:
        instances = InstanceStore(store)
        stored = await instances.get(uuid)
        assert stored is not None
        await instances.update(stored, mark)
    finally:
        await store.close()


async def test_a_snapshot_no_node_agent_starts_fails_its_first_artifact(
    api: Api, etcd: str
) -> None:
    """The node agent cannot be asked (none runs): 503, the reserved blob
    `error`, and its artifact, whose first snapshot that was, `error` with
    the reason, rather than `initial` for ever."""
    created = await create(api, "snap-unasked", placed_on=NODE)
    await made_created(etcd, created.uuid, instance_pb2.Disk(device="vda"))
    request = instance_service_pb2.SnapshotInstanceRequest(ref=created.uuid)
    error = await refused(api.instances.SnapshotInstance(request, metadata=api.system, timeout=10))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    source = f"sf://instance/{created.uuid}/vda"
    store = Store(etcd)
    try:
        artifacts = ArtifactStore(store)
        (artifact,) = [
            stored.record
            async for stored in artifacts.all()
            if stored.record.artifact.source_url == source
        ]
        assert artifact.artifact.state == artifact_pb2.ARTIFACT_STATE_ERROR
        assert artifact.artifact.error_message == f"snapshot not started: {error.details()}"
        assert not artifact.versions
        reserved = [
            stored.record
            async for stored in artifacts.all_blobs()
            if stored.record.artifact_uuid == artifact.artifact.uuid
        ]
        assert [blob.blob.state for blob in reserved] == [artifact_pb2.BLOB_STATE_ERROR]
    finally:
        await store.close()


# --- NVRAM templates (reference §2.8, §4.7, §11 Q13) ------------------------


async def nvram_blob(etcd: str, refs: int = 1) -> str:
    """A created raw blob, as an NVRAM snapshot is, held `refs` times."""
    blob_uuid = str(uuid.uuid4())
    view = artifact_pb2.Blob(
        uuid=blob_uuid,
        state=artifact_pb2.BLOB_STATE_CREATED,
        version=6,
        size=540672,
        format="raw",
        reference_count=refs,
    )
    store = Store(etcd)
    try:
        record = records_pb2.BlobRecord(blob=view, created_at=time.time())
        assert await store.commit([Put(key("blob", blob_uuid), record.SerializeToString(), 0)])
    finally:
        await store.close()
    return blob_uuid


async def nvram_label(etcd: str, label: str, blob_uuid: str) -> None:
    """A label of system's holding `blob_uuid` as its one version."""
    record = records_pb2.ArtifactRecord(
        artifact=artifact_pb2.Artifact(
            uuid=str(uuid.uuid4()),
            state=artifact_pb2.ARTIFACT_STATE_CREATED,
            artifact_type=artifact_pb2.ARTIFACT_TYPE_LABEL,
            source_url=f"sf://label/{SYSTEM}/{label}",
            namespace=SYSTEM,
            name=label,
        ),
        versions=[records_pb2.VersionRecord(index=1, blob_uuid=blob_uuid)],
        last_index=1,
    )
    store = Store(etcd)
    try:
        put = Put(key("artifact", record.artifact.uuid), record.SerializeToString(), 0)
        assert await store.commit([put])
    finally:
        await store.close()


async def references(etcd: str, blob_uuid: str) -> int:
    store = Store(etcd)
    try:
        stored = await ArtifactStore(store).get_blob(blob_uuid)
    finally:
        await store.close()
    assert stored is not None
    return stored.record.blob.reference_count


async def test_an_nvram_template_names_a_blob_the_instance_holds(api: Api, etcd: str) -> None:
    by_blob, by_label, bare = await nvram_blob(etcd), await nvram_blob(etcd), await nvram_blob(etcd)
    await nvram_label(etcd, name("vars"), by_label)
    made = {}
    for suffix, template, blob_uuid in (
        ("nv-blob", f"sf://blob/{by_blob}", by_blob),  # Q13: that blob, no 500
        ("nv-label", f"label:{name('vars')}", by_label),
        ("nv-bare", bare.upper(), bare),
    ):
        instance = await create(api, suffix, uefi=True, nvram_template=template, placed_on=NODE)
        assert instance.nvram_template == blob_uuid
        assert await references(etcd, blob_uuid) == 2  # the label's or test's, and the instance's
        made[instance.uuid] = blob_uuid
    store = Store(etcd)
    try:
        stored = await InstanceStore(store).get(next(iter(made)))
        assert stored is not None and stored.record.nvram_blob_uuid == by_blob
    finally:
        await store.close()
    for instance_uuid, blob_uuid in made.items():
        await delete(api, instance_uuid)
        await torn_down(etcd, instance_uuid)
        await until_deleted(api, instance_uuid)
        assert await references(etcd, blob_uuid) == 1


@pytest.mark.parametrize(
    ("template", "code", "message"),
    [
        ("sf://blob/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12, "NOT_FOUND", "blob not found"),
        ("label:no-such-label", "NOT_FOUND", "artifact not found"),
        ("opaque-template", "INVALID_ARGUMENT", None),
    ],
)
async def test_an_nvram_template_that_names_nothing_leaves_nothing(
    api: Api, template: str, code: str, message: str | None
) -> None:
    before = await listed(api, api.system, all=True)
    error = await refused(create(api, "nv-refused", uefi=True, nvram_template=template))
    assert error.code().name == code
    if message is not None:
        assert error.details() == message
    assert await listed(api, api.system, all=True) == before


async def test_an_nvram_template_needs_uefi(api: Api, etcd: str) -> None:
    blob_uuid = await nvram_blob(etcd)
    error = await refused(create(api, "nv-bios", nvram_template=f"sf://blob/{blob_uuid}"))
    assert (error.code(), error.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "nvram_template requires UEFI be enabled",
    )
    assert await references(etcd, blob_uuid) == 1
