"""Network metadata routes of NetworkService (other-apis §1.15): read the
object, set or remove one key, checked as instance metadata is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import empty_pb2, json_format
from sfmesh.v1 import network_service_pb2, records_pb2

from services.api.metadata import rules as metadata
from services.api.networks.store import NetworkStore, StoredNetwork
from services.common import errors


class NetworkMetadata:
    """Mixed into the network servicer, which provides `_networks` and `_resolve`."""

    _networks: NetworkStore
    _resolve: Callable[[str], Awaitable[StoredNetwork]]

    async def GetNetworkMetadata(
        self,
        request: network_service_pb2.GetNetworkMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.GetNetworkMetadataResponse:
        network = (await self._resolve(request.ref)).record.network
        reply = network_service_pb2.GetNetworkMetadataResponse()
        reply.metadata.CopyFrom(network.metadata)
        return reply

    async def SetNetworkMetadata(
        self,
        request: network_service_pb2.SetNetworkMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored = await self._resolve(request.ref)
        value = json_format.MessageToDict(request.value) if request.HasField("value") else None
        metadata.check_entry(request.key, value)

        def store_value(record: records_pb2.NetworkRecord) -> None:
            metadata.put_entry(record.network.metadata, request.key, request.value)

        await self._networks.update(stored, store_value)
        return empty_pb2.Empty()

    async def DeleteNetworkMetadata(
        self,
        request: network_service_pb2.DeleteNetworkMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored = await self._resolve(request.ref)
        if not request.key:
            raise errors.InvalidArgument("no key specified")
        if request.key in stored.record.network.metadata.fields:

            def drop_key(record: records_pb2.NetworkRecord) -> None:
                record.network.metadata.fields.pop(request.key, None)

            await self._networks.update(stored, drop_key)
        return empty_pb2.Empty()
