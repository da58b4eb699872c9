"""Interface metadata routes of NetworkService (other-apis §2): read an
interface's metadata object, set or remove one key, checked as instance
metadata is. An interface lives in its instance's record, so each change is
a compare-and-swap of that record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf import empty_pb2, json_format
from sfmesh.v1 import instance_pb2, network_service_pb2, records_pb2

from services.api import sizes
from services.api.metadata import rules as metadata
from services.common import errors
from services.common.instance_store import InstanceStore, StoredInstance, interface_of


class InterfaceMetadata:
    """Mixed into the network servicer, which provides `_instances` and
    `_find_interface`."""

    _instances: InstanceStore
    _find_interface: Callable[[str], Awaitable[tuple[StoredInstance, instance_pb2.Interface]]]

    async def GetInterfaceMetadata(
        self,
        request: network_service_pb2.GetInterfaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.GetInterfaceMetadataResponse:
        _, nic = await self._find_interface(request.uuid)
        reply = network_service_pb2.GetInterfaceMetadataResponse()
        reply.metadata.CopyFrom(nic.metadata)
        return reply

    async def SetInterfaceMetadata(
        self,
        request: network_service_pb2.SetInterfaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored, _ = await self._find_interface(request.uuid)
        value = json_format.MessageToDict(request.value) if request.HasField("value") else None
        metadata.check_entry(request.key, value)

        def store_value(record: records_pb2.InstanceRecord) -> None:
            before = record.ByteSize()
            nic = interface_of(record, request.uuid)
            metadata.put_entry(nic.metadata, request.key, request.value)
            sizes.check_record_growth(before, record)

        await self._instances.update(stored, store_value)
        return empty_pb2.Empty()

    async def DeleteInterfaceMetadata(
        self,
        request: network_service_pb2.DeleteInterfaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        stored, nic = await self._find_interface(request.uuid)
        if not request.key:
            raise errors.InvalidArgument("no key specified")
        if request.key in nic.metadata.fields:

            def drop_key(record: records_pb2.InstanceRecord) -> None:
                interface_of(record, request.uuid).metadata.fields.pop(request.key, None)

            await self._instances.update(stored, drop_key)
        return empty_pb2.Empty()
