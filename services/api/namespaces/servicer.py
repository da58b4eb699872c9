"""AuthService: tokens, namespaces, keys and trusts (other-apis reference §3,
instances reference §5).

Each RPC checks in the reference's order, then writes the namespace record
with compare-and-swap (`NamespaceStore.update`, which re-applies the change,
and so its checks, after a lost race). The rules are in `rules.py`.

A deleted namespace takes its artifacts with it (artifacts reference §9.7).
Artifacts sit above namespaces in the api's layers, so the servicer is given
what deletes them (`NamespaceContents`, from `server.py`) and calls it once
the namespace is recorded `deleted`: a refused or lost delete touches no
artifact, and the artifacts' sweeper deletes any a failure here left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import grpc
from google.protobuf import empty_pb2, struct_pb2
from sfmesh.v1 import auth_service_pb2, auth_service_pb2_grpc, records_pb2

from services.api.metadata.handler import MetadataHandler
from services.api.namespaces import rules
from services.api.namespaces.keys import KeyChecker, make_key
from services.api.namespaces.lookup import NamespaceLookup
from services.api.namespaces.store import NamespaceStore
from services.common import errors
from services.common.interceptors import caller
from services.common.tokens import TokenAuthority

Change = Callable[[records_pb2.NamespaceRecord], None]


def namespace_metadata(record: records_pb2.NamespaceRecord, name: str) -> struct_pb2.Struct:
    """A namespace's metadata in its record. Pure."""
    return record.metadata


class NamespaceContents(Protocol):
    """What a namespace holds that goes when it is deleted."""

    async def namespace_deleted(self, namespace: str) -> None:
        """Delete what `namespace`, now recorded `deleted`, holds."""


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """POST /auth and the /auth/namespaces routes; the metadata routes are
    delegated to the metadata handler."""

    def __init__(
        self, namespaces: NamespaceStore, authority: TokenAuthority, contents: NamespaceContents
    ) -> None:
        self._namespaces = namespaces
        self._authority = authority
        self._contents = contents
        self._lookup = NamespaceLookup(namespaces)
        self._keys = KeyChecker()
        self._metadata = MetadataHandler(
            find=self._lookup.visible, metadata_of=namespace_metadata, update=namespaces.update
        )

    async def CreateToken(
        self, request: auth_service_pb2.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.CreateTokenResponse:
        if not request.namespace:
            raise errors.InvalidArgument("missing namespace in request")
        namespace = await self._namespaces.get(request.namespace)
        if namespace is None or not rules.is_live(namespace):
            raise errors.NotFound("namespace not found")
        if not request.key:
            raise errors.InvalidArgument("missing key in request")
        key = await self._keys.matching_key(namespace, request.key)
        if key is None:
            raise errors.Unauthenticated("unauthorized", reason="BAD_KEY")
        token = self._authority.issue_user(namespace.name, key.name, key.nonce)
        return auth_service_pb2.CreateTokenResponse(
            access_token=token, token_type="Bearer", expires_in=self._authority.ttl_seconds
        )

    async def ListNamespaces(
        self, request: auth_service_pb2.ListNamespacesRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.ListNamespacesResponse:
        me = caller().namespace
        return auth_service_pb2.ListNamespacesResponse(
            namespaces=[
                rules.view(record)
                async for record in self._namespaces.all()
                if record.state == rules.CREATED and rules.is_trusted(me, record)
            ]
        )

    async def CreateNamespace(
        self, request: auth_service_pb2.CreateNamespaceRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.Namespace:
        rules.check_system(caller().namespace)
        rules.check_new_namespace_name(request.namespace)
        if await self._namespaces.get(request.namespace) is not None:
            raise _exists()
        record = records_pb2.NamespaceRecord(name=request.namespace, state=rules.CREATED)
        try:
            with_key = rules.first_key_to_add(request.key_name, request.key)
        except errors.SfmeshError:
            # Shaken Fist creates the namespace before it checks the key.
            await self._namespaces.create(record)
            raise
        if with_key:
            record.keys.append(await make_key(request.key_name, request.key))
        if not await self._namespaces.create(record):
            raise _exists()
        return rules.view(record)

    async def GetNamespace(
        self, request: auth_service_pb2.GetNamespaceRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.Namespace:
        record = await self._namespaces.get(request.namespace)
        return rules.view(rules.check_visible(caller().namespace, record))

    async def DeleteNamespace(
        self, request: auth_service_pb2.DeleteNamespaceRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        me = caller().namespace
        rules.check_system(me)
        stored = await self._lookup.live(request.namespace)
        rules.check_deletable(
            request.namespace,
            await self._namespaces.instance_states(request.namespace),
            await self._namespaces.network_states(request.namespace),
        )

        def delete(record: records_pb2.NamespaceRecord) -> None:
            rules.check_visible(me, record)
            record.state = rules.DELETED

        await self._namespaces.update(stored, delete)
        await self._contents.namespace_deleted(request.namespace)
        return empty_pb2.Empty()

    async def ListKeys(
        self, request: auth_service_pb2.ListKeysRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.ListKeysResponse:
        found = await self._namespaces.get(request.namespace)
        record = rules.check_visible(caller().namespace, found)
        return auth_service_pb2.ListKeysResponse(key_names=[key.name for key in record.keys])

    async def CreateKey(
        self, request: auth_service_pb2.CreateKeyRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.CreateKeyResponse:
        me = caller().namespace
        stored = await self._lookup.visible(request.namespace)
        rules.check_new_key(request.key_name, request.key)
        key = await make_key(request.key_name, request.key)

        def put(record: records_pb2.NamespaceRecord) -> None:
            rules.check_visible(me, record)
            rules.put_key(record, key)

        await self._namespaces.update(stored, put)
        return auth_service_pb2.CreateKeyResponse(key_name=request.key_name)

    async def UpdateKey(
        self, request: auth_service_pb2.UpdateKeyRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        me = caller().namespace
        rules.check_system(me)
        stored = await self._lookup.visible(request.namespace)
        _check_has_key(stored.record, request.key_name)
        rules.check_new_key(request.key_name, request.key)
        key = await make_key(request.key_name, request.key)

        def rotate(record: records_pb2.NamespaceRecord) -> None:
            rules.check_visible(me, record)
            _check_has_key(record, request.key_name)
            rules.put_key(record, key)

        await self._namespaces.update(stored, rotate)
        return empty_pb2.Empty()

    async def DeleteKey(
        self, request: auth_service_pb2.DeleteKeyRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        me = caller().namespace
        stored = await self._lookup.visible(request.namespace)

        def remove(record: records_pb2.NamespaceRecord) -> None:
            rules.check_visible(me, record)
            rules.remove_key(record, request.key_name)

        await self._namespaces.update(stored, remove)
        return empty_pb2.Empty()

    async def AddTrust(
        self, request: auth_service_pb2.AddTrustRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.Namespace:
        return await self._change_trust(request.namespace, request.external_namespace, add=True)

    async def RemoveTrust(
        self, request: auth_service_pb2.RemoveTrustRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.Namespace:
        return await self._change_trust(request.namespace, request.external_namespace, add=False)

    async def _change_trust(
        self, namespace: str, external: str, *, add: bool
    ) -> auth_service_pb2.Namespace:
        """Reference §3.7's order: exists (404), external given (400), trusted (404)."""
        me = caller().namespace
        stored = await self._lookup.live(namespace)
        rules.check_external_namespace(external)
        rules.check_visible(me, stored.record)

        def change(record: records_pb2.NamespaceRecord) -> None:
            rules.check_visible(me, record)
            if add:
                rules.add_trust(record, external)
            else:
                rules.remove_trust(record, external)

        return rules.view(await self._namespaces.update(stored, change))

    async def GetNamespaceMetadata(
        self,
        request: auth_service_pb2.GetNamespaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> auth_service_pb2.GetNamespaceMetadataResponse:
        metadata = await self._metadata.get(request.namespace)
        return auth_service_pb2.GetNamespaceMetadataResponse(metadata=metadata)

    async def SetNamespaceMetadata(
        self,
        request: auth_service_pb2.SetNamespaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._metadata.set(request.namespace, request.key, request.value)

    async def DeleteNamespaceMetadata(
        self,
        request: auth_service_pb2.DeleteNamespaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._metadata.delete(request.namespace, request.key)


def _exists() -> errors.PermissionDenied:
    return errors.PermissionDenied("namespace exists", reason="NAMESPACE_EXISTS")


def _check_has_key(record: records_pb2.NamespaceRecord, key_name: str) -> None:
    if not any(key.name == key_name for key in record.keys):
        raise errors.NotFound("key does not exist", reason="KEY_NOT_FOUND")
