"""The other node agents as a blob copy reaches them: which nodes are alive
(their records in etcd say `created`), and `ReadBlob` on the agent of one of
them, found at the address its node record publishes and called with this
agent's internal token. One channel per address, opened on first use.

A read hands back each chunk as it arrives; a stream that sends nothing for
`stall` seconds is given up (the copier resumes elsewhere), so a frozen peer
holds a copy for at most that long, whatever the call's overall deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import grpc
from sfmesh.v1 import (
    node_agent_service_pb2,
    node_agent_service_pb2_grpc,
    node_service_pb2,
    records_pb2,
)

from services.common.channels import quick_reconnect
from services.common.store import Store, key, kind_prefix
from services.common.tokens import Credentials
from services.common.transport import Transport

READ_DEADLINE = 24 * 3600.0
"""Seconds one ReadBlob call may last in all (the stall bound cuts it short)."""
STALL_SECONDS = 30.0
"""Seconds a read may go without a chunk before it is given up."""


class PeerReadFailed(Exception):
    """A read from a peer broke off or could not start; `missing` when the
    peer answered that it does not hold the blob."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class PeerAgents:
    """Reads blobs from other node agents."""

    def __init__(
        self,
        store: Store,
        credentials: Credentials,
        *,
        transport: Transport,
        stall: float = STALL_SECONDS,
    ) -> None:
        self._store = store
        self._credentials = credentials
        self._transport = transport
        self._stall = stall
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def alive(self) -> frozenset[str]:
        """The names of nodes whose records say `created`."""
        names = set()
        async for item in self._store.list_prefix(kind_prefix("node")):
            record = records_pb2.NodeRecord.FromString(item.value)
            if record.state == node_service_pb2.NODE_STATE_CREATED:
                names.add(record.name)
        return frozenset(names)

    async def read(self, node: str, uuid: str, offset: int) -> AsyncGenerator[bytes, None]:
        """Blob `uuid`'s bytes on `node` from `offset` to its end, chunk by
        chunk. Raises PeerReadFailed, at the start or part way."""
        stub = await self._stub(node)
        request = node_agent_service_pb2.ReadBlobRequest(blob_uuid=uuid, offset=offset)
        call = stub.ReadBlob(request, metadata=self._credentials(), timeout=READ_DEADLINE)
        try:
            while True:
                try:
                    async with asyncio.timeout(self._stall):
                        reply = await call.read()
                except TimeoutError:
                    raise PeerReadFailed(f"node {node} sent nothing for {self._stall} s") from None
                if reply is grpc.aio.EOF:
                    return
                assert isinstance(reply, node_agent_service_pb2.ReadBlobResponse)
                yield reply.data
        except grpc.aio.AioRpcError as exc:
            missing = exc.code() == grpc.StatusCode.NOT_FOUND
            raise PeerReadFailed(
                f"reading from node {node}: {exc.code().name} {exc.details()}", missing=missing
            ) from exc
        finally:
            call.cancel()

    async def close(self) -> None:
        """Close every channel."""
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def _stub(self, node: str) -> node_agent_service_pb2_grpc.NodeAgentServiceStub:
        item = await self._store.get(key("node", node))
        record = records_pb2.NodeRecord.FromString(item.value) if item else None
        if record is None or record.state != node_service_pb2.NODE_STATE_CREATED:
            raise PeerReadFailed(f"node {node} is not available")
        if not record.facts.address:
            raise PeerReadFailed(f"node {node} publishes no address")
        address = record.facts.address
        channel = self._channels.get(address)
        if channel is None:
            channel = self._transport.channel(address, options=quick_reconnect())
            self._channels[address] = channel
        return node_agent_service_pb2_grpc.NodeAgentServiceStub(channel)
