"""NodeService: the hypervisor nodes as the scheduler recorded them in etcd
(`/sfmesh/v1/node/<name>`); system namespace only (other-apis §4)."""

from __future__ import annotations

import grpc
from sfmesh.v1 import node_service_pb2, node_service_pb2_grpc, records_pb2

from services.api.visibility import SYSTEM
from services.common import errors
from services.common.config import split_address
from services.common.interceptors import caller
from services.common.store import Store, key, kind_prefix

NODE_VERSION = 7


def node_view(record: records_pb2.NodeRecord) -> node_service_pb2.Node:
    """A node record as clients see it. Pure."""
    host = split_address(record.facts.address)[0] if record.facts.address else ""
    view = node_service_pb2.Node(
        uuid=record.name,
        state=record.state,
        version=NODE_VERSION,
        name=record.name,
        ip=host,
        lastseen=record.lastseen,
        is_hypervisor=True,
    )
    view.metadata.SetInParent()
    return view


class NodeServicer(node_service_pb2_grpc.NodeServiceServicer):
    """Lists and reads node records."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def ListNodes(
        self, request: node_service_pb2.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> node_service_pb2.ListNodesResponse:
        _require_system()
        reply = node_service_pb2.ListNodesResponse()
        async for item in self._store.list_prefix(kind_prefix("node")):
            reply.nodes.append(node_view(records_pb2.NodeRecord.FromString(item.value)))
        return reply

    async def GetNode(
        self, request: node_service_pb2.GetNodeRequest, context: grpc.aio.ServicerContext
    ) -> node_service_pb2.Node:
        _require_system()
        item = await self._store.get(key("node", request.node)) if request.node else None
        if item is None:
            raise errors.NotFound("node not found")
        return node_view(records_pb2.NodeRecord.FromString(item.value))


def _require_system() -> None:
    if caller().namespace != SYSTEM:
        raise errors.Unauthenticated("unauthorized", reason="NOT_SYSTEM")
