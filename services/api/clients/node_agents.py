"""The api's client of node agents: operations whose caller waits for the
hypervisor, sent to the agent of the node hosting the instance, and the
bytes of uploads and blobs, sent to the node holding them. Agents are found
through the node records the scheduler keeps in etcd."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sfmesh.v1 import (
    node_agent_service_pb2,
    node_agent_service_pb2_grpc,
    node_service_pb2,
    records_pb2,
)

from services.common import errors
from services.common.channels import quick_reconnect
from services.common.store import Store, key
from services.common.tokens import InternalCredentials
from services.common.transport import Transport

POWER_DEADLINE = 60.0
CONSOLE_DEADLINE = 10.0
PING_DEADLINE = 30.0
APPEND_DEADLINE = 3600.0
"""Seconds one append may take (the client sends chunks of at most 2 MiB;
curl may send a whole file in one)."""
UPLOAD_DEADLINE = 60.0
"""Seconds a truncate or a discard may take."""
SEAL_DEADLINE = 1800.0
"""Seconds a seal may take: it reads the whole file for its sha512."""
SCREENSHOT_DEADLINE = 30.0
"""Seconds a screenshot may take: QEMU's image, its PNG, the blob written."""
SNAPSHOT_DEADLINE = 30.0
"""Seconds a node agent may take to start a snapshot (it answers before copying)."""
PLUG_DEADLINE = 30.0
"""Seconds a node agent may take to plug a NIC (the network made ready, a
live attach: about a second)."""
AGENT_OPERATION_DEADLINE = 10.0
"""Seconds a node agent may take to queue an agent operation (it answers at once)."""
READ_DEADLINE = 24 * 3600.0
"""Seconds a blob read may last: as long as a slow client reads."""
CONSOLE_OPEN_DEADLINE = 10.0
"""Seconds a node agent may take to reach a console before relaying it (the
relay itself has no deadline: its ticket's expiry ends it)."""


HEALTH_WAIT = 1.0
"""Seconds a node agent has to answer a health check before it counts as down."""


class SizeMismatch(errors.Conflict):
    """An upload's file does not have the size its record says (a crash
    between the two writes); `actual` is the file's size."""

    def __init__(self, message: str, *, actual: int) -> None:
        super().__init__(message, reason="UPLOAD_SIZE_MISMATCH")
        self.actual = actual


class NodeAgents:
    """One channel per node agent address, opened on first use."""

    def __init__(
        self, store: Store, credentials: InternalCredentials, *, transport: Transport
    ) -> None:
        self._store = store
        self._credentials = credentials
        self._transport = transport
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def change_power(
        self,
        node: str,
        uuid: str,
        operation: node_agent_service_pb2.PowerOperation,
        request_id: str,
    ) -> None:
        """Apply a power operation; 409 when the hypervisor refuses, 503 when
        the node's agent cannot be reached."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.ChangePowerRequest(
            instance_uuid=uuid, operation=operation, request_id=request_id
        )
        try:
            await stub.ChangePower(
                request, metadata=self._credentials.metadata(), timeout=POWER_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc

    async def snapshot_disk(
        self,
        node: str,
        *,
        instance_uuid: str,
        device: str,
        artifact_uuid: str,
        blob_uuid: str,
        request_id: str,
        thin: bool = False,
    ) -> None:
        """Ask `node` to start copying an instance's disk into blob
        `blob_uuid`, a version of `artifact_uuid` to be (only the disk's own
        layer when `thin`)."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.SnapshotDiskRequest(
            instance_uuid=instance_uuid,
            device=device,
            artifact_uuid=artifact_uuid,
            blob_uuid=blob_uuid,
            request_id=request_id,
            thin=thin,
        )
        try:
            await stub.SnapshotDisk(
                request, metadata=self._credentials.metadata(), timeout=SNAPSHOT_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc

    async def plug_interface(
        self, node: str, *, instance_uuid: str, interface_uuid: str, request_id: str
    ) -> None:
        """Ask `node` to plug an instance's `initial` NIC into its running
        domain and record it `created`; 409 when the hypervisor refuses, 503
        when the node's agent cannot be reached (or did not answer in time)."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.PlugInterfaceRequest(
            instance_uuid=instance_uuid, interface_uuid=interface_uuid, request_id=request_id
        )
        try:
            await stub.PlugInterface(
                request, metadata=self._credentials.metadata(), timeout=PLUG_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc

    async def read_console(self, node: str, uuid: str, length: int) -> bytes:
        """The last `length` bytes of an instance's console log (-1: all)."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.ReadConsoleRequest(instance_uuid=uuid, length=length)
        try:
            reply = await stub.ReadConsole(
                request, metadata=self._credentials.metadata(), timeout=CONSOLE_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc
        return reply.data

    async def clear_console(self, node: str, uuid: str) -> None:
        """Empty an instance's console log."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.ClearConsoleRequest(instance_uuid=uuid)
        try:
            await stub.ClearConsole(
                request, metadata=self._credentials.metadata(), timeout=CONSOLE_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc

    async def take_screenshot(
        self, node: str, uuid: str, *, namespace: str, expires_at: float, request_id: str
    ) -> str:
        """Have `node` take a screenshot of instance `uuid` into a new blob
        owned by `namespace` that expires at `expires_at`; its uuid. 406
        when the domain is not running."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.TakeScreenshotRequest(
            instance_uuid=uuid, namespace=namespace, expires_at=expires_at, request_id=request_id
        )
        try:
            reply = await stub.TakeScreenshot(
                request, metadata=self._credentials.metadata(), timeout=SCREENSHOT_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc
        return reply.blob_uuid

    async def run_agent_operation(self, node: str, uuid: str, operation_uuid: str) -> None:
        """Have `node` queue agent operation `operation_uuid` of instance `uuid`."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.RunAgentOperationRequest(
            instance_uuid=uuid, operation_uuid=operation_uuid
        )
        try:
            await stub.RunAgentOperation(
                request, metadata=self._credentials.metadata(), timeout=AGENT_OPERATION_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc

    async def ping(
        self, node: str, vxlan_id: int, address: str
    ) -> node_agent_service_pb2.PingOnNetworkResponse:
        """Ping `address` from network `vxlan_id`'s namespace on `node`."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.PingOnNetworkRequest(vxlan_id=vxlan_id, address=address)
        try:
            return await stub.PingOnNetwork(
                request, metadata=self._credentials.metadata(), timeout=PING_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc

    async def append_to_upload(
        self,
        node: str,
        upload_uuid: str,
        *,
        expected_size: int,
        max_size: int,
        chunks: AsyncIterator[bytes],
    ) -> int:
        """Append `chunks` to an upload's file on `node`, all or nothing; its
        size after. Stops taking chunks when the node ends the call early:
        the caller reads what is left of `chunks`. Raises SizeMismatch when
        the file's size is not `expected_size`."""
        stub = await self._stub(node)
        call = stub.AppendToUpload(metadata=self._credentials.metadata(), timeout=APPEND_DEADLINE)
        try:
            first = node_agent_service_pb2.AppendToUploadRequest(
                upload_uuid=upload_uuid, expected_size=expected_size, max_size=max_size
            )
            sent = False
            async for chunk in chunks:
                message = first if not sent else node_agent_service_pb2.AppendToUploadRequest()
                message.data = chunk
                sent = True
                if not await _write(call, message):
                    break  # the node ended the call: its status says why
            else:
                if not sent:
                    await _write(call, first)
                with contextlib.suppress(asyncio.InvalidStateError, grpc.aio.AioRpcError):
                    await call.done_writing()
            reply = await call
        except grpc.aio.AioRpcError as exc:
            raise _upload_error(exc) from exc
        finally:
            call.cancel()  # a no-op once it ended; else the node keeps nothing
        return int(reply.size)

    async def truncate_upload_file(self, node: str, upload_uuid: str, size: int) -> int:
        """Cut an upload's file back to `size` bytes; its size after."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.TruncateUploadFileRequest(
            upload_uuid=upload_uuid, size=size
        )
        try:
            reply = await stub.TruncateUploadFile(
                request, metadata=self._credentials.metadata(), timeout=UPLOAD_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise _upload_error(exc) from exc
        return int(reply.size)

    async def seal_upload(
        self, node: str, upload_uuid: str, blob_uuid: str
    ) -> node_agent_service_pb2.SealUploadResponse:
        """Turn an upload's file into blob `blob_uuid` on `node`."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.SealUploadRequest(
            upload_uuid=upload_uuid, blob_uuid=blob_uuid
        )
        try:
            return await stub.SealUpload(
                request, metadata=self._credentials.metadata(), timeout=SEAL_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc

    async def discard_upload(self, node: str, upload_uuid: str) -> None:
        """Delete an upload's file on `node` (a missing one is fine)."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.DiscardUploadRequest(upload_uuid=upload_uuid)
        try:
            await stub.DiscardUpload(
                request, metadata=self._credentials.metadata(), timeout=UPLOAD_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc

    async def read_blob(
        self, node: str, blob_uuid: str, offset: int, limit: int
    ) -> AsyncIterator[bytes]:
        """The bytes of a blob `node` holds, from `offset`, at most `limit`
        of them (0: to the end), chunk by chunk."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.ReadBlobRequest(
            blob_uuid=blob_uuid, offset=offset, limit=limit
        )
        call = stub.ReadBlob(request, metadata=self._credentials.metadata(), timeout=READ_DEADLINE)
        try:
            async for reply in call:
                yield reply.data
        except grpc.aio.AioRpcError as exc:
            raise errors.from_rpc_error(exc, "node agent") from exc
        finally:
            call.cancel()

    async def relay_console(self, node: str, uuid: str) -> grpc.aio.StreamStreamCall:
        """A relay of instance `uuid`'s VNC console by `node`'s agent, once
        the agent has reached the console (its initial metadata); its
        refusal (406, 409) passed on, 503 when it cannot be asked."""
        stub = await self._stub(node)
        call = stub.RelayConsole(metadata=self._credentials.metadata())
        try:
            await _write(call, node_agent_service_pb2.RelayConsoleRequest(instance_uuid=uuid))
            await asyncio.wait_for(call.initial_metadata(), CONSOLE_OPEN_DEADLINE)
            if call.done() and await call.code() != grpc.StatusCode.OK:
                raise grpc.aio.AioRpcError(
                    await call.code(),
                    await call.initial_metadata(),
                    await call.trailing_metadata(),
                    await call.details(),
                )
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            raise errors.from_rpc_error(exc, "node agent") from exc
        except TimeoutError as exc:
            call.cancel()
            raise errors.Unavailable(
                f"the node agent of node {node} did not reach the console in time",
                reason="NODE_AGENT_UNAVAILABLE",
            ) from exc
        return call

    async def answering(self, nodes: Sequence[str]) -> list[str]:
        """Those of `nodes` whose agent answers a health check within
        `HEALTH_WAIT` seconds: a node record still says `created` for the
        scheduler's grace period after its agent died."""

        async def serving(node: str) -> bool:
            try:
                channel = await self._channel(node)
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=HEALTH_WAIT
                )
            except (errors.SfmeshError, grpc.aio.AioRpcError):
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        answers = await asyncio.gather(*(serving(node) for node in nodes))
        return [node for node, ok in zip(nodes, answers, strict=True) if ok]

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def _stub(self, node: str) -> node_agent_service_pb2_grpc.NodeAgentServiceStub:
        return node_agent_service_pb2_grpc.NodeAgentServiceStub(await self._channel(node))

    async def _channel(self, node: str) -> grpc.aio.Channel:
        item = await self._store.get(key("node", node)) if node else None
        record = records_pb2.NodeRecord.FromString(item.value) if item else None
        if record is None or record.state != node_service_pb2.NODE_STATE_CREATED:
            raise errors.Unavailable(
                f"the node agent of node {node or '(none)'} is not available",
                reason="NODE_AGENT_UNAVAILABLE",
            )
        address = record.facts.address
        channel = self._channels.get(address)
        if channel is None:
            channel = self._transport.channel(address, options=quick_reconnect())
            self._channels[address] = channel
        return channel


async def _write(
    call: grpc.aio.StreamUnaryCall | grpc.aio.StreamStreamCall, message: object
) -> bool:
    """Send one message; False when the call has already ended."""
    try:
        await call.write(message)
    except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
        return False
    return True


def _upload_error(exc: grpc.aio.AioRpcError) -> errors.SfmeshError:
    """A node's refusal of an upload operation: SizeMismatch when it is
    FAILED_PRECONDITION with the file's real size in its ErrorInfo's
    metadata (`size`), else the node's error as it said it."""
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        actual = _error_metadata(exc).get("size", "")
        if actual.isdigit():
            return SizeMismatch(exc.details() or "the upload's size changed", actual=int(actual))
    return errors.from_rpc_error(exc, "node agent")


def _error_metadata(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    status = status_pb2.Status()
    for name, value in exc.trailing_metadata() or ():
        if name == "grpc-status-details-bin" and isinstance(value, bytes):
            status.ParseFromString(value)
    for packed in status.details:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            return dict(info.metadata)
    return {}
