"""NodeAgentService: the operations whose caller waits for the hypervisor's
answer — power operations, the serial console, screenshots and hot-plugged
NICs (`hotplug.py`) — agent operations handed to their queue
(`agent_operations.py`), and pings from a network's namespace here. Uploads and
blob reads are `transfers.py`'s, handed on as they come; snapshot copies
start here and run as tasks of `snapshots.py`."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
from sfmesh.v1 import instance_pb2, node_agent_service_pb2, node_agent_service_pb2_grpc

from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.wire import wire_name
from services.node_agent.agent_operations import AgentOperations
from services.node_agent.commands import DataPlaneError
from services.node_agent.console_relay import ConsoleRelay
from services.node_agent.dataplane import DataPlane, NoNetwork
from services.node_agent.graphics_ports import NoFreePort
from services.node_agent.hotplug import Hotplug
from services.node_agent.hypervisor import Hypervisor, HypervisorError
from services.node_agent.reconciler import Reconciler
from services.node_agent.screenshots import BadImage, NotRunning, Screenshots
from services.node_agent.snapshots import NVRAM, Job, Snapshots
from services.node_agent.transfers import TransferServicer, check_uuid


def console_tail(path: Path, length: int) -> bytes:
    """The last `length` bytes of a console log (all of it for -1); empty
    when there is no log yet."""
    try:
        with path.open("rb") as log:
            if length >= 0:
                size = log.seek(0, 2)
                log.seek(max(0, size - length))
            return log.read()
    except FileNotFoundError:
        return b""


class NodeAgentServicer(node_agent_service_pb2_grpc.NodeAgentServiceServicer):
    """Power and console for the instances this node hosts."""

    def __init__(
        self,
        *,
        lookup: Callable[[str], StoredInstance | None],
        records: InstanceStore,
        hypervisor: Hypervisor,
        reconciler: Reconciler,
        console_log: Callable[[str], Path],
        dataplane: DataPlane,
        transfers: TransferServicer,
        snapshots: Snapshots,
        screenshots: Screenshots,
        hotplug: Hotplug,
        consoles: ConsoleRelay,
        agent_operations: AgentOperations,
    ) -> None:
        self._consoles = consoles
        self._agent_operations = agent_operations
        self._screenshots = screenshots
        self._hotplug = hotplug
        self._dataplane = dataplane
        self._snapshots = snapshots
        self._transfers = transfers
        self._lookup = lookup
        self._records = records
        self._hypervisor = hypervisor
        self._reconciler = reconciler
        self._console_log = console_log

    async def ChangePower(
        self,
        request: node_agent_service_pb2.ChangePowerRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.ChangePowerResponse:
        self._hosted(request.instance_uuid)
        if not request.operation:
            raise errors.InvalidArgument("operation is required")
        async with self._reconciler.power_guard(request.instance_uuid):
            try:
                if request.operation == node_agent_service_pb2.POWER_OPERATION_POWER_ON:
                    await self._reconciler.power_on(request.instance_uuid)  # moves a taken port
                else:
                    await self._hypervisor.change(request.instance_uuid, request.operation)
                power = await self._hypervisor.state(request.instance_uuid)
            except (HypervisorError, NoFreePort) as exc:
                await self._check_still_created(request.instance_uuid)
                raise errors.Conflict(str(exc), reason="HYPERVISOR_REFUSED") from exc
            if power is not None:  # the answer waits until the record shows it
                await self._reconciler.record_power(request.instance_uuid, power)
        return node_agent_service_pb2.ChangePowerResponse()

    async def ReadConsole(
        self,
        request: node_agent_service_pb2.ReadConsoleRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.ReadConsoleResponse:
        self._hosted(request.instance_uuid)
        path = self._console_log(request.instance_uuid)
        data = await asyncio.to_thread(console_tail, path, request.length)
        return node_agent_service_pb2.ReadConsoleResponse(data=data)

    async def ClearConsole(
        self,
        request: node_agent_service_pb2.ClearConsoleRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.ClearConsoleResponse:
        self._hosted(request.instance_uuid)
        path = self._console_log(request.instance_uuid)
        if await asyncio.to_thread(path.exists):
            await asyncio.to_thread(path.write_bytes, b"")
        return node_agent_service_pb2.ClearConsoleResponse()

    async def PingOnNetwork(
        self,
        request: node_agent_service_pb2.PingOnNetworkRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.PingOnNetworkResponse:
        try:
            code, stdout, stderr = await self._dataplane.ping(request.vxlan_id, request.address)
        except ValueError as exc:
            raise errors.InvalidArgument(f"invalid address: {exc}") from exc
        except NoNetwork as exc:
            raise errors.Conflict(str(exc), reason="NETWORK_NOT_CARRIED") from exc
        except DataPlaneError as exc:  # ping or ip cannot run here
            raise errors.SfmeshError(str(exc)) from exc
        return node_agent_service_pb2.PingOnNetworkResponse(
            exit_code=code, stdout=stdout, stderr=stderr
        )

    async def SnapshotDisk(
        self,
        request: node_agent_service_pb2.SnapshotDiskRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.SnapshotDiskResponse:
        stored = self._hosted(request.instance_uuid)
        for field in ("artifact_uuid", "blob_uuid"):
            check_uuid(field, getattr(request, field))
        instance = stored.record.instance
        job = Job(
            instance_uuid=request.instance_uuid,
            device=request.device,
            artifact_uuid=request.artifact_uuid,
            blob_uuid=request.blob_uuid,
            request_id=request.request_id,
        )
        if request.device == NVRAM and instance.uefi:
            await self._snapshots.run(job)  # milliseconds: versioned before the answer
            return node_agent_service_pb2.SnapshotDiskResponse()
        chosen = [
            d for d in instance.disks if d.device == request.device and not d.snapshot_ignores
        ]
        if not chosen:
            raise errors.InvalidArgument(f"instance has no disk {request.device!r} to copy")
        if request.thin and chosen[0].HasField("blob_uuid"):
            job = dataclasses.replace(job, parent=chosen[0].blob_uuid)
        self._snapshots.start(job)
        return node_agent_service_pb2.SnapshotDiskResponse()

    async def TakeScreenshot(
        self,
        request: node_agent_service_pb2.TakeScreenshotRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.TakeScreenshotResponse:
        self._hosted(request.instance_uuid)
        if not request.namespace:
            raise errors.InvalidArgument("namespace is required")
        try:
            shot = await self._screenshots.take(
                request.instance_uuid,
                namespace=request.namespace,
                expires_at=request.expires_at,
                request_id=request.request_id,
            )
        except NotRunning as exc:
            await self._check_still_created(request.instance_uuid)
            raise errors.NotReady(str(exc), reason="NOT_RUNNING") from exc
        except HypervisorError as exc:
            await self._check_still_created(request.instance_uuid)
            raise errors.Conflict(str(exc), reason="HYPERVISOR_REFUSED") from exc
        except BadImage as exc:
            raise errors.SfmeshError(str(exc)) from exc
        return node_agent_service_pb2.TakeScreenshotResponse(
            blob_uuid=shot.blob_uuid, size=shot.size
        )

    async def RunAgentOperation(
        self,
        request: node_agent_service_pb2.RunAgentOperationRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.RunAgentOperationResponse:
        self._hosted(request.instance_uuid)
        check_uuid("operation_uuid", request.operation_uuid)
        self._agent_operations.submit(request.instance_uuid, request.operation_uuid)
        return node_agent_service_pb2.RunAgentOperationResponse()

    async def PlugInterface(
        self,
        request: node_agent_service_pb2.PlugInterfaceRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.PlugInterfaceResponse:
        if not request.instance_uuid:
            raise errors.InvalidArgument("instance_uuid is required")
        check_uuid("interface_uuid", request.interface_uuid)
        await self._hotplug.plug(request.instance_uuid, request.interface_uuid)
        return node_agent_service_pb2.PlugInterfaceResponse()

    async def AppendToUpload(
        self,
        request_iterator: AsyncIterator[node_agent_service_pb2.AppendToUploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.UploadFileSize:
        return await self._transfers.AppendToUpload(request_iterator, context)

    async def TruncateUploadFile(
        self,
        request: node_agent_service_pb2.TruncateUploadFileRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.UploadFileSize:
        return await self._transfers.TruncateUploadFile(request, context)

    async def SealUpload(
        self,
        request: node_agent_service_pb2.SealUploadRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.SealUploadResponse:
        return await self._transfers.SealUpload(request, context)

    async def DiscardUpload(
        self,
        request: node_agent_service_pb2.DiscardUploadRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_agent_service_pb2.DiscardUploadResponse:
        return await self._transfers.DiscardUpload(request, context)

    async def ReadBlob(
        self,
        request: node_agent_service_pb2.ReadBlobRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[node_agent_service_pb2.ReadBlobResponse]:
        # An async generator itself: grpc.aio recognises a stream handler so.
        async for reply in self._transfers.ReadBlob(request, context):
            yield reply

    async def RelayConsole(
        self,
        request_iterator: AsyncIterator[node_agent_service_pb2.RelayConsoleRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[node_agent_service_pb2.RelayConsoleResponse]:
        async for reply in self._consoles.relay(request_iterator, context):
            yield reply

    async def _check_still_created(self, uuid: str) -> None:
        """A delete that won the race tore the domain down under the
        operation: that is the instance's state, not a hypervisor refusal."""
        stored = await self._records.get(uuid)
        state = stored.record.instance.state if stored else states.DELETED
        if state != states.CREATED:
            name = wire_name(instance_pb2.InstanceState.DESCRIPTOR, state)
            raise errors.NotReady(f"instance {uuid} is not ready ({name})")

    def _hosted(self, uuid: str) -> StoredInstance:
        if not uuid:
            raise errors.InvalidArgument("instance_uuid is required")
        stored = self._lookup(uuid)
        if stored is None:
            raise errors.NotFound(f"instance {uuid} is not on this node")
        return stored
