"""Namespace metadata routes of AuthService (other-apis §3.8): read the
object, set or remove one key. The caller must be the namespace, one it
trusts, or system (else 404), and the namespace must exist (404); then the
key and value are checked (400) as for instance metadata."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import empty_pb2, json_format
from sfmesh.v1 import auth_service_pb2, records_pb2

from services.api.metadata import rules as metadata
from services.api.namespaces import rules
from services.api.namespaces.store import NamespaceStore
from services.common import errors
from services.common.interceptors import caller


class NamespaceMetadata:
    """Mixed into the auth servicer, which provides `_namespaces` and `_visible`."""

    _namespaces: NamespaceStore
    _visible: Callable[[str, str], Awaitable[NamespaceStore.Stored]]

    async def GetNamespaceMetadata(
        self,
        request: auth_service_pb2.GetNamespaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> auth_service_pb2.GetNamespaceMetadataResponse:
        stored = await self._live(request.namespace)
        reply = auth_service_pb2.GetNamespaceMetadataResponse()
        reply.metadata.CopyFrom(stored.record.metadata)
        return reply

    async def SetNamespaceMetadata(
        self,
        request: auth_service_pb2.SetNamespaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored = await self._live(request.namespace)
        value = json_format.MessageToDict(request.value) if request.HasField("value") else None
        metadata.check_entry(request.key, value)

        def store_value(record: records_pb2.NamespaceRecord) -> None:
            metadata.put_entry(record.metadata, request.key, request.value)

        await self._namespaces.update(stored, store_value)
        return empty_pb2.Empty()

    async def DeleteNamespaceMetadata(
        self,
        request: auth_service_pb2.DeleteNamespaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored = await self._live(request.namespace)
        if not request.key:
            raise errors.InvalidArgument("no key specified")
        if request.key in stored.record.metadata.fields:

            def drop_key(record: records_pb2.NamespaceRecord) -> None:
                record.metadata.fields.pop(request.key, None)

            await self._namespaces.update(stored, drop_key)
        return empty_pb2.Empty()

    async def _live(self, name: str) -> NamespaceStore.Stored:
        """Trusted first (404), then existing and not deleted (404)."""
        stored = await self._visible(caller().namespace, name)
        if not rules.is_live(stored.record):
            raise rules.not_found()
        return stored
