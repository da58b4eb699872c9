"""The api's client of node agents: operations whose caller waits for the
hypervisor, sent to the agent of the node hosting the instance. Agents are
found through the node records the scheduler keeps in etcd."""

from __future__ import annotations

import grpc
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

POWER_DEADLINE = 60.0
CONSOLE_DEADLINE = 10.0
PING_DEADLINE = 30.0


class NodeAgents:
    """One channel per node agent address, opened on first use."""

    def __init__(self, store: Store, credentials: InternalCredentials) -> None:
        self._store = store
        self._credentials = credentials
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

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def _stub(self, node: str) -> node_agent_service_pb2_grpc.NodeAgentServiceStub:
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
            channel = grpc.aio.insecure_channel(address, options=quick_reconnect())
            self._channels[address] = channel
        return node_agent_service_pb2_grpc.NodeAgentServiceStub(channel)
