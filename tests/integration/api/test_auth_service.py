"""The api's AuthService over real gRPC, on a real etcd: namespaces, keys,
trusts (other-apis reference §3), token revocation (instances reference
§5.3), and a deleted namespace's artifacts (artifacts reference §9.7).

The server is built as services/api/server.py builds it (the same
interceptors, with the revocation check), minus signals, on a free loopback
port. Every namespace these tests make is named `t<run>-...`, and the fixture
removes exactly those (and the instance records it wrote) from the shared etcd.
"""

from __future__ import annotations

import asyncio
import secrets
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
    artifact_pb2,
    auth_service_pb2,
    auth_service_pb2_grpc,
    instance_pb2,
    network_service_pb2,
    records_pb2,
)

from services.api.artifacts.deletion import ArtifactDeletion
from services.api.artifacts.store import ArtifactStore
from services.api.clients.events import Events
from services.api.namespaces import rules
from services.api.namespaces.keys import SYSTEM, ensure_system_namespace, make_key
from services.api.namespaces.revocation import Revocation
from services.api.namespaces.servicer import AuthServicer
from services.api.namespaces.store import NamespaceStore
from services.common import errors
from services.common import instance_states as states
from services.common.config import MeshConfig
from services.common.instance_store import InstanceStore
from services.common.interceptors import AuthInterceptor, RequestInterceptor
from services.common.main import service_authority, service_emitter
from services.common.secrets import load_or_create_secret
from services.common.store import Delete, Put, Store, key, kind_prefix
from services.common.tokens import Caller, InternalCredentials, TokenAuthority
from services.common.transport import Transport
from tests.integration.api.artifact_records import blob_record, put_artifact, put_blob

RUN = uuid.uuid4().hex[:8]
PREFIX = f"t{RUN}-"
NO_EVENTLOG = "127.0.0.1:1"
BLOBS: list[str] = []
"""Blob records these tests wrote, removed at the end."""

Metadata = tuple[tuple[str, str], ...]


@dataclass
class Api:
    """A running api and what the tests need to talk to it."""

    store: Store
    namespaces: NamespaceStore
    revocation: Revocation
    authority: TokenAuthority
    auth: auth_service_pb2_grpc.AuthServiceStub
    system: Metadata
    artifacts: ArtifactStore


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def fresh(suffix: str) -> str:
    """A namespace name of this run."""
    return f"{PREFIX}{suffix}-{uuid.uuid4().hex[:6]}"


async def _system_key(store: Store, namespaces: NamespaceStore, state_dir: Path) -> str:
    """The key in `<state>/system.key`; when another test of this session
    already made the system namespace, a key of ours added to it."""
    await ensure_system_namespace(namespaces, state_dir)
    path = state_dir / "system.key"
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(24)
    item = await store.get(key("namespace", SYSTEM))
    assert item is not None
    record = records_pb2.NamespaceRecord.FromString(item.value)
    record.keys.append(await make_key(f"t{RUN}", secret))
    assert await store.commit(
        [Put(item.key, record.SerializeToString(), mod_revision=item.mod_revision)]
    )
    path.write_text(secret + "\n")
    return secret


async def _clean(store: Store, created_system: bool) -> None:
    """Remove what these tests wrote to the shared etcd."""
    doomed: list[Delete] = [
        Delete(item.key)
        async for item in store.list_prefix(kind_prefix("namespace"))
        if item.key.startswith(key("namespace", PREFIX))
    ]
    doomed += [
        Delete(key("instance", stored.record.instance.uuid))
        async for stored in InstanceStore(store).all()
        if stored.record.instance.namespace.startswith(PREFIX)
    ]
    doomed += [
        Delete(item.key)
        async for item in store.list_prefix(kind_prefix("network"))
        if records_pb2.NetworkRecord.FromString(item.value).network.namespace.startswith(PREFIX)
    ]
    artifacts = ArtifactStore(store)
    doomed += [
        Delete(key("artifact", stored.record.artifact.uuid))
        async for stored in artifacts.all()
        if stored.record.artifact.namespace.startswith(PREFIX)
    ]
    doomed += [Delete(key("blob", blob_uuid)) for blob_uuid in BLOBS]
    if created_system:
        doomed.append(Delete(key("namespace", SYSTEM)))
    if doomed:
        assert await store.commit(doomed)
    if created_system:
        return
    item = await store.get(key("namespace", SYSTEM))
    if item is not None:
        record = records_pb2.NamespaceRecord.FromString(item.value)
        kept = [k for k in record.keys if k.name != f"t{RUN}"]
        if len(kept) != len(record.keys):
            del record.keys[:]
            record.keys.extend(kept)
            put = Put(item.key, record.SerializeToString(), mod_revision=item.mod_revision)
            assert await store.commit([put])


async def _until(condition: Any, *, within: float) -> float:
    """Seconds until the awaited `condition()` is true; fails after `within`."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < within
        await asyncio.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture(scope="module")
async def api(etcd: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    state_dir = tmp_path_factory.mktemp("auth-state")
    store = Store(etcd)
    namespaces = NamespaceStore(store)
    created_system = await namespaces.get(SYSTEM) is None
    system_key = await _system_key(store, namespaces, state_dir)
    authority = service_authority(
        state_dir,
        Transport(),
        user_secret=load_or_create_secret(state_dir / "jwt.secret"),
        ttl_seconds=900,
    )
    revocation = Revocation(namespaces)
    revocation.start()
    # No eventlog runs here: events are spooled.
    mesh = MeshConfig(state_dir, etcd=(etcd,), api="", scheduler="", eventlog=NO_EVENTLOG)
    emitter = service_emitter(mesh, "auth-test", authority)
    await emitter.start()
    events = Events(
        emitter, NO_EVENTLOG, InternalCredentials(authority, "auth-test"), transport=Transport()
    )
    artifacts = ArtifactStore(store)
    server = grpc.aio.server(
        interceptors=[RequestInterceptor(), AuthInterceptor(authority, check=revocation.check)]
    )
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(
        AuthServicer(namespaces, authority, ArtifactDeletion(artifacts, events)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = auth_service_pb2_grpc.AuthServiceStub(channel)
    reply = await stub.CreateToken(
        auth_service_pb2.CreateTokenRequest(namespace=SYSTEM, key=system_key), timeout=10
    )
    try:
        yield Api(
            store, namespaces, revocation, authority, stub, bearer(reply.access_token), artifacts
        )
    finally:
        await channel.close()
        await server.stop(None)
        await revocation.close()
        await events.close()
        await emitter.close(timeout=0)
        await _clean(store, created_system)
        await store.close()


async def token(api: Api, namespace: str, secret: str) -> Metadata:
    reply = await api.auth.CreateToken(
        auth_service_pb2.CreateTokenRequest(namespace=namespace, key=secret), timeout=10
    )
    return bearer(reply.access_token)


async def create(
    api: Api, name: str, key_name: str | None = "k1", secret: str | None = "s1"
) -> auth_service_pb2.Namespace:
    request = auth_service_pb2.CreateNamespaceRequest(namespace=name)
    if key_name is not None:
        request.key_name = key_name
    if secret is not None:
        request.key = secret
    return await api.auth.CreateNamespace(request, metadata=api.system, timeout=10)


async def get(api: Api, name: str, as_: Metadata) -> auth_service_pb2.Namespace:
    return await api.auth.GetNamespace(
        auth_service_pb2.GetNamespaceRequest(namespace=name), metadata=as_, timeout=10
    )


async def listed(api: Api, as_: Metadata) -> list[str]:
    reply = await api.auth.ListNamespaces(
        auth_service_pb2.ListNamespacesRequest(), metadata=as_, timeout=10
    )
    return [n.name for n in reply.namespaces]


async def keys(api: Api, name: str, as_: Metadata) -> list[str]:
    reply = await api.auth.ListKeys(
        auth_service_pb2.ListKeysRequest(namespace=name), metadata=as_, timeout=10
    )
    return list(reply.key_names)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def assert_error(error: grpc.aio.AioRpcError, http_status: int, message: str) -> None:
    """The call failed with `message` and an ErrorInfo asking for `http_status`."""
    status = rpc_status.from_call(error)
    assert status is not None
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert [i.metadata["http_status"] for i in infos] == [str(http_status)]
    assert error.details() == message


async def still_valid(api: Api, as_: Metadata) -> bool:
    try:
        await listed(api, as_)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "token revoked"
        return False
    return True


# --- create, read, list ----------------------------------------------------------


async def test_create_with_a_first_key_and_authenticate(api: Api) -> None:
    name = fresh("create")
    made = await create(api, name)
    assert made.name == name
    assert made.state == "created"
    assert made.version == 5
    assert list(made.keys) == ["k1"]
    assert list(made.trust.full) == ["system"]
    assert made.HasField("metadata")
    own = await token(api, name, "s1")
    assert await get(api, name, own) == made
    assert await keys(api, name, own) == ["k1"]
    stored = await api.namespaces.get(name)
    assert stored is not None
    assert stored.keys[0].bcrypt_hash.startswith(b"$2")
    assert len(stored.keys[0].nonce) == 16


async def test_only_system_creates(api: Api) -> None:
    name = fresh("owner")
    await create(api, name)
    own = await token(api, name, "s1")
    error = await refused(
        api.auth.CreateNamespace(
            auth_service_pb2.CreateNamespaceRequest(namespace=fresh("x")), metadata=own, timeout=10
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert_error(error, 401, "unauthorized")


async def test_create_refusals(api: Api) -> None:
    assert_error(await refused(create(api, "", None, None)), 400, "no namespace specified")
    name = fresh("dup")
    await create(api, name, None, None)
    error = await refused(create(api, name, None, None))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert_error(error, 403, "namespace exists")


async def test_bad_first_key_leaves_the_namespace_behind(api: Api) -> None:
    no_secret, reserved = fresh("nosecret"), fresh("reserved")
    assert_error(await refused(create(api, no_secret, "k1", "")), 400, "no key specified")
    assert_error(await refused(create(api, reserved, "service_key", "s")), 403, "illegal key name")
    for name in (no_secret, reserved):
        assert list((await get(api, name, api.system)).keys) == []


async def test_a_key_without_a_name_is_ignored(api: Api) -> None:
    made = await create(api, fresh("nokeyname"), None, "s1")
    assert list(made.keys) == []


async def test_others_see_404_and_lists_show_only_trusting_namespaces(api: Api) -> None:
    mine, theirs = fresh("mine"), fresh("theirs")
    await asyncio.gather(create(api, mine), create(api, theirs))
    me = await token(api, mine, "s1")
    error = await refused(get(api, theirs, me))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert_error(error, 404, "namespace not found")
    assert_error(await refused(get(api, fresh("absent"), api.system)), 404, "namespace not found")
    assert_error(await refused(keys(api, theirs, me)), 404, "namespace not found")
    assert await listed(api, me) == [mine]
    every = await listed(api, api.system)
    assert {SYSTEM, mine, theirs} <= set(every)
    assert every == sorted(every)


# --- keys ----------------------------------------------------------------------------


async def test_add_list_and_delete_keys(api: Api) -> None:
    name = fresh("keys")
    await create(api, name)
    own = await token(api, name, "s1")
    reply = await api.auth.CreateKey(
        auth_service_pb2.CreateKeyRequest(namespace=name, key_name="k2", key="s2"),
        metadata=own,
        timeout=10,
    )
    assert reply.key_name == "k2"
    assert await keys(api, name, own) == ["k1", "k2"]
    await token(api, name, "s2")
    await api.auth.DeleteKey(
        auth_service_pb2.DeleteKeyRequest(namespace=name, key_name="k2"), metadata=own, timeout=10
    )
    assert await keys(api, name, own) == ["k1"]
    error = await refused(
        api.auth.DeleteKey(
            auth_service_pb2.DeleteKeyRequest(namespace=name, key_name="k2"),
            metadata=own,
            timeout=10,
        )
    )
    assert_error(error, 404, "key name not found in namespace")
    assert_error(await refused(token(api, name, "s2")), 401, "unauthorized")


@pytest.mark.parametrize(
    ("key_name", "secret", "status", "message"),
    [
        ("", "s", 400, "no key name specified"),
        ("k", "", 400, "no key specified"),
        ("_service_key", "s", 403, "illegal key name"),
        ("_service_key_abcde", "s", 403, "illegal key name"),
    ],
)
async def test_key_refusals(
    api: Api, key_name: str, secret: str, status: int, message: str
) -> None:
    error = await refused(
        api.auth.CreateKey(
            auth_service_pb2.CreateKeyRequest(namespace=SYSTEM, key_name=key_name, key=secret),
            metadata=api.system,
            timeout=10,
        )
    )
    assert_error(error, status, message)


async def test_concurrent_key_writes_all_land(api: Api) -> None:
    name = fresh("race")
    await create(api, name, None, None)
    await asyncio.gather(
        *(
            api.auth.CreateKey(
                auth_service_pb2.CreateKeyRequest(namespace=name, key_name=f"k{i}", key=f"s{i}"),
                metadata=api.system,
                timeout=30,
            )
            for i in range(6)
        )
    )
    assert sorted(await keys(api, name, api.system)) == [f"k{i}" for i in range(6)]


# --- revocation -------------------------------------------------------------------


async def test_deleting_a_key_revokes_its_tokens_at_once(api: Api) -> None:
    name = fresh("revoke")
    await create(api, name)
    await api.auth.CreateKey(
        auth_service_pb2.CreateKeyRequest(namespace=name, key_name="k2", key="s2"),
        metadata=api.system,
        timeout=10,
    )
    doomed, kept = await asyncio.gather(token(api, name, "s1"), token(api, name, "s2"))
    assert await still_valid(api, doomed)
    await api.auth.DeleteKey(
        auth_service_pb2.DeleteKeyRequest(namespace=name, key_name="k1"), metadata=kept, timeout=10
    )

    async def revoked() -> bool:
        return not await still_valid(api, doomed)

    assert await _until(revoked, within=1.0) < 1.0
    assert await still_valid(api, kept)
    error = await refused(listed(api, doomed))
    assert_error(error, 401, "token revoked")


async def test_rotating_a_key_revokes_its_tokens(api: Api) -> None:
    name = fresh("rotate")
    await create(api, name)
    before = await token(api, name, "s1")
    # Re-posting a key name overwrites it: Shaken Fist's working rotation.
    await api.auth.CreateKey(
        auth_service_pb2.CreateKeyRequest(namespace=name, key_name="k1", key="s1b"),
        metadata=before,
        timeout=10,
    )

    async def revoked() -> bool:
        return not await still_valid(api, before)

    await _until(revoked, within=1.0)
    assert_error(await refused(token(api, name, "s1")), 401, "unauthorized")
    after = await token(api, name, "s1b")
    assert await still_valid(api, after)


async def test_update_key(api: Api) -> None:
    name = fresh("update")
    await create(api, name)
    own = await token(api, name, "s1")

    def update(key_name: str, secret: str, as_: Metadata) -> Any:
        return api.auth.UpdateKey(
            auth_service_pb2.UpdateKeyRequest(namespace=name, key_name=key_name, key=secret),
            metadata=as_,
            timeout=10,
        )

    assert_error(await refused(update("k1", "s2", own)), 401, "unauthorized")
    assert_error(await refused(update("nope", "s2", api.system)), 404, "key does not exist")
    assert_error(await refused(update("k1", "", api.system)), 400, "no key specified")
    nonce = (await api.namespaces.get(name)).keys[0].nonce  # type: ignore[union-attr]
    await update("k1", "s2", api.system)
    assert (await api.namespaces.get(name)).keys[0].nonce != nonce  # type: ignore[union-attr]

    async def revoked() -> bool:
        return not await still_valid(api, own)

    await _until(revoked, within=1.0)
    assert_error(await refused(token(api, name, "s1")), 401, "unauthorized")
    assert await still_valid(api, await token(api, name, "s2"))


async def test_check_reads_etcd_until_the_watch_is_synced(api: Api) -> None:
    name = fresh("cold")
    await create(api, name)
    stored = await api.namespaces.get(name)
    assert stored is not None
    cold = Revocation(api.namespaces)
    assert not cold.synced
    await cold.check(Caller(name, "k1", stored.keys[0].nonce))
    with pytest.raises(errors.Unauthenticated):
        await cold.check(Caller(name, "k1", "stale"))
    await cold.check(Caller(SYSTEM, "api", "", internal=True))
    cold.start()
    try:

        async def synced() -> bool:
            return cold.synced

        await _until(synced, within=5.0)
        await cold.check(Caller(name, "k1", stored.keys[0].nonce))
        with pytest.raises(errors.Unauthenticated):
            await cold.check(Caller(name, "gone", stored.keys[0].nonce))
    finally:
        await cold.close()


# --- trusts ----------------------------------------------------------------------


async def test_trust_lets_the_trusted_manage_but_not_the_reverse(api: Api) -> None:
    owner, friend = fresh("owner"), fresh("friend")
    await asyncio.gather(create(api, owner), create(api, friend))
    as_owner, as_friend = await asyncio.gather(token(api, owner, "s1"), token(api, friend, "s1"))
    assert_error(await refused(get(api, owner, as_friend)), 404, "namespace not found")

    shown = await api.auth.AddTrust(
        auth_service_pb2.AddTrustRequest(namespace=owner, external_namespace=friend),
        metadata=as_owner,
        timeout=10,
    )
    assert list(shown.trust.full) == ["system", friend]
    assert (await get(api, owner, as_friend)).name == owner
    assert sorted(await listed(api, as_friend)) == sorted([owner, friend])
    await api.auth.CreateKey(
        auth_service_pb2.CreateKeyRequest(namespace=owner, key_name="fk", key="fs"),
        metadata=as_friend,
        timeout=10,
    )
    assert_error(await refused(get(api, friend, as_owner)), 404, "namespace not found")

    shown = await api.auth.RemoveTrust(
        auth_service_pb2.RemoveTrustRequest(namespace=owner, external_namespace=friend),
        metadata=as_owner,
        timeout=10,
    )
    assert list(shown.trust.full) == ["system"]
    assert_error(await refused(get(api, owner, as_friend)), 404, "namespace not found")


async def test_trust_checks_in_the_reference_order(api: Api) -> None:
    owner, stranger = fresh("t-owner"), fresh("t-stranger")
    await asyncio.gather(create(api, owner), create(api, stranger))
    as_stranger = await token(api, stranger, "s1")

    def add(namespace: str, external: str, as_: Metadata) -> Any:
        return api.auth.AddTrust(
            auth_service_pb2.AddTrustRequest(namespace=namespace, external_namespace=external),
            metadata=as_,
            timeout=10,
        )

    error = await refused(add(fresh("absent"), "", as_stranger))
    assert_error(error, 404, "namespace not found")
    error = await refused(add(owner, "", as_stranger))
    assert_error(error, 400, "no external namespace specified")
    assert_error(await refused(add(owner, stranger, as_stranger)), 404, "namespace not found")
    # The trusted name need not exist; system stays whatever is removed.
    shown = await add(owner, "not-a-namespace", api.system)
    assert list(shown.trust.full) == ["system", "not-a-namespace"]
    shown = await api.auth.RemoveTrust(
        auth_service_pb2.RemoveTrustRequest(namespace=owner, external_namespace=SYSTEM),
        metadata=api.system,
        timeout=10,
    )
    assert list(shown.trust.full) == ["system", "not-a-namespace"]


# --- delete ---------------------------------------------------------------------------


async def test_delete_namespace(api: Api) -> None:
    name = fresh("delete")
    await create(api, name)
    own = await token(api, name, "s1")

    def delete(target: str, as_: Metadata) -> Any:
        return api.auth.DeleteNamespace(
            auth_service_pb2.DeleteNamespaceRequest(namespace=target), metadata=as_, timeout=10
        )

    assert_error(await refused(delete(name, own)), 401, "unauthorized")
    assert_error(await refused(delete(fresh("absent"), api.system)), 404, "namespace not found")
    error = await refused(delete(SYSTEM, api.system))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert_error(error, 403, "you cannot delete the system namespace")

    await delete(name, api.system)
    stored = await api.namespaces.get(name)
    assert stored is not None
    assert stored.state == "deleted"
    assert [k.name for k in stored.keys] == ["k1"]
    assert_error(await refused(token(api, name, "s1")), 404, "namespace not found")

    async def revoked() -> bool:  # the revocation cache follows etcd by a watch
        return not await still_valid(api, own)

    assert await _until(revoked, within=1.0) < 1.0
    error = await refused(listed(api, own))
    assert_error(error, 401, "token revoked")
    assert_error(await refused(get(api, name, api.system)), 404, "namespace not found")
    assert name not in await listed(api, api.system)
    assert_error(await refused(delete(name, api.system)), 404, "namespace not found")
    assert_error(await refused(create(api, name, None, None)), 403, "namespace exists")


async def _instance(api: Api, namespace: str, state: instance_pb2.InstanceState) -> None:
    record = records_pb2.InstanceRecord(
        instance=instance_pb2.Instance(
            uuid=str(uuid.uuid4()), name=f"{PREFIX}i", namespace=namespace, state=state
        )
    )
    assert await InstanceStore(api.store).create(record)


async def test_instances_block_a_namespace_delete(api: Api) -> None:
    busy, done = fresh("busy"), fresh("done")
    await asyncio.gather(create(api, busy, None, None), create(api, done, None, None))
    await _instance(api, busy, states.DELETED)
    await _instance(api, busy, states.DELETE_WAIT)
    await _instance(api, done, states.DELETED)
    await _instance(api, done, states.ERROR)
    error = await refused(
        api.auth.DeleteNamespace(
            auth_service_pb2.DeleteNamespaceRequest(namespace=busy),
            metadata=api.system,
            timeout=10,
        )
    )
    assert_error(error, 400, "you cannot delete a namespace with instances")
    await api.auth.DeleteNamespace(
        auth_service_pb2.DeleteNamespaceRequest(namespace=done), metadata=api.system, timeout=10
    )
    assert rules.is_live(await api.namespaces.get(busy))
    assert not rules.is_live(await api.namespaces.get(done))


async def test_live_networks_block_a_namespace_delete(api: Api) -> None:
    name = fresh("nets")
    await create(api, name, None, None)
    network = network_service_pb2.Network(
        uuid=str(uuid.uuid4()), namespace=name, state=network_service_pb2.NETWORK_STATE_CREATED
    )
    record = records_pb2.NetworkRecord(network=network)
    at = key("network", network.uuid)
    assert await api.store.commit([Put(at, record.SerializeToString(), 0)])
    request = auth_service_pb2.DeleteNamespaceRequest(namespace=name)
    error = await refused(api.auth.DeleteNamespace(request, metadata=api.system, timeout=10))
    assert_error(error, 400, "you cannot delete a namespace with networks")
    assert rules.is_live(await api.namespaces.get(name))

    item = await api.store.get(at)
    assert item is not None
    record.network.state = network_service_pb2.NETWORK_STATE_DELETE_WAIT
    assert await api.store.commit([Put(at, record.SerializeToString(), item.mod_revision)])
    await api.auth.DeleteNamespace(request, metadata=api.system, timeout=10)
    assert not rules.is_live(await api.namespaces.get(name))


async def test_a_deleted_namespace_takes_its_live_artifacts_and_their_references(api: Api) -> None:
    """A refused delete touches no artifact; a done one deletes each live
    artifact of the namespace once, letting go of its blobs as
    DELETE /artifacts/{ref} does, and nothing of another namespace."""
    gone, kept, busy = fresh("arts"), fresh("keep"), fresh("busy-arts")
    await asyncio.gather(*(create(api, name, None, None) for name in (gone, kept, busy)))
    shared = await put_blob(api.artifacts, blob_record())
    own = await put_blob(api.artifacts, blob_record())
    BLOBS.extend([shared, own])
    doomed = await put_artifact(api.artifacts, gone, [shared, own])
    already = await put_artifact(api.artifacts, gone, [], deleted_at=time.time() - 10)
    theirs = await put_artifact(api.artifacts, kept, [shared])
    blocked = await put_artifact(api.artifacts, busy, [own])
    await _instance(api, busy, states.CREATED)

    async def state(artifact_uuid: str) -> int:
        stored = await api.artifacts.get(artifact_uuid)
        assert stored is not None
        return stored.record.artifact.state

    async def references(blob_uuid: str) -> tuple[int, int]:
        stored = await api.artifacts.get_blob(blob_uuid)
        assert stored is not None
        return stored.record.blob.reference_count, stored.record.blob.state

    created, deleted = artifact_pb2.ARTIFACT_STATE_CREATED, artifact_pb2.ARTIFACT_STATE_DELETED
    live_blob, deleted_blob = artifact_pb2.BLOB_STATE_CREATED, artifact_pb2.BLOB_STATE_DELETED
    error = await refused(
        api.auth.DeleteNamespace(
            auth_service_pb2.DeleteNamespaceRequest(namespace=busy), metadata=api.system, timeout=10
        )
    )
    assert_error(error, 400, "you cannot delete a namespace with instances")
    assert await state(blocked) == created
    assert await references(own) == (2, live_blob)

    already_before = await api.artifacts.get(already)
    await api.auth.DeleteNamespace(
        auth_service_pb2.DeleteNamespaceRequest(namespace=gone), metadata=api.system, timeout=10
    )
    assert await state(doomed) == deleted
    assert await state(theirs) == created
    assert await references(shared) == (1, live_blob)  # the other namespace's version holds it
    assert await references(own) == (1, live_blob)  # the busy namespace's version holds it
    assert await api.artifacts.get(already) == already_before  # deleted before: untouched (Q4)
    stored = await api.artifacts.get(doomed)
    assert stored is not None and stored.record.deleted_at > 0
    assert [v.blob_uuid for v in stored.record.versions] == [shared, own]  # still listed

    # A second delete is refused; nothing is let go of twice.
    error = await refused(
        api.auth.DeleteNamespace(
            auth_service_pb2.DeleteNamespaceRequest(namespace=gone), metadata=api.system, timeout=10
        )
    )
    assert_error(error, 404, "namespace not found")
    assert await references(shared) == (1, live_blob)
    await api.auth.DeleteNamespace(
        auth_service_pb2.DeleteNamespaceRequest(namespace=kept), metadata=api.system, timeout=10
    )
    assert await state(theirs) == deleted
    assert await references(shared) == (0, deleted_blob)  # its last reference
