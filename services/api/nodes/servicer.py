"""NodeService: the hypervisor nodes as the scheduler records them in etcd
(`/sfmesh/v1/node/<name>`), their deletion, events and metadata; system
namespace only (reference §7): everyone else gets 401 `unauthorized`."""

from __future__ import annotations

import logging
import time

import grpc
from google.protobuf import empty_pb2, struct_pb2
from sfmesh.v1 import node_service_pb2, node_service_pb2_grpc, records_pb2

from services.api.clients.events import NODE, Events
from services.api.metadata.handler import MetadataEvents, MetadataHandler
from services.api.nodes import resources, rules
from services.api.nodes.retirement import Retirement
from services.api.nodes.store import NodeStore, StoredNode
from services.api.visibility import SYSTEM
from services.common import errors
from services.common.interceptors import caller

log = logging.getLogger("sfmesh.api.nodes")

ATTEMPTS = 8
"""Tries of a delete whose record the scheduler changed meanwhile."""


def node_metadata(record: records_pb2.NodeRecord, ref: str) -> struct_pb2.Struct:
    """A node's metadata in its record. Pure."""
    return record.metadata


def node_name(stored: StoredNode) -> str:
    """The name node events are recorded on. Pure."""
    return stored.record.name


class NodeServicer(node_service_pb2_grpc.NodeServiceServicer):
    """Node records: read, deleted, their events and metadata."""

    def __init__(self, nodes: NodeStore, events: Events, retirement: Retirement) -> None:
        self._nodes = nodes
        self._events = events
        self._retirement = retirement
        self._metadata = MetadataHandler(
            find=nodes.find,
            metadata_of=node_metadata,
            update=nodes.update,
            recorded=MetadataEvents(events, NODE, node_name),
        )

    async def ListNodes(
        self, request: node_service_pb2.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> node_service_pb2.ListNodesResponse:
        _require_system()
        reply = node_service_pb2.ListNodesResponse()
        async for stored in self._nodes.all():
            reply.nodes.append(rules.node_view(stored.record))
        return reply

    async def GetNode(
        self, request: node_service_pb2.GetNodeRequest, context: grpc.aio.ServicerContext
    ) -> node_service_pb2.Node:
        _require_system()
        return rules.node_view((await self._nodes.find(request.node)).record)

    async def DeleteNode(
        self, request: node_service_pb2.DeleteNodeRequest, context: grpc.aio.ServicerContext
    ) -> node_service_pb2.Node:
        _require_system()
        stored = await self._nodes.find(request.node)
        name = stored.record.name
        self._events.audit(name, "delete request from REST API", kind=NODE)
        for _ in range(ATTEMPTS):
            record = records_pb2.NodeRecord()
            record.CopyFrom(stored.record)
            if not rules.mark_deleted(record, time.time()):
                break  # deleted already: harmless
            if await self._nodes.delete(stored, record):
                self._events.attribute_set(name, "state", "deleted", kind=NODE)
                stored = StoredNode(record, 0)
                break
            stored = await self._nodes.find(name)
        else:
            raise errors.Aborted(f"node {name} kept changing; try again")
        try:
            await self._retirement.retire(name)
        except errors.SfmeshError as exc:  # the sweep finishes it
            log.warning("node deleted; its follow-up waits for the sweep: %s", exc.message)
        return rules.node_view(stored.record)

    async def ListNodeEvents(
        self, request: node_service_pb2.ListNodeEventsRequest, context: grpc.aio.ServicerContext
    ) -> node_service_pb2.ListNodeEventsResponse:
        _require_system()
        name = (await self._nodes.find(request.node)).record.name
        events = await self._events.listed(NODE, name, request)
        return node_service_pb2.ListNodeEventsResponse(events=events)

    async def GetNodeMetadata(
        self, request: node_service_pb2.GetNodeMetadataRequest, context: grpc.aio.ServicerContext
    ) -> node_service_pb2.GetNodeMetadataResponse:
        _require_system()
        metadata = await self._metadata.get(request.node)
        return node_service_pb2.GetNodeMetadataResponse(metadata=metadata)

    async def SetNodeMetadata(
        self, request: node_service_pb2.SetNodeMetadataRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        _require_system()
        return await self._metadata.set(request.node, request.key, request.value)

    async def DeleteNodeMetadata(
        self,
        request: node_service_pb2.DeleteNodeMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        _require_system()
        return await self._metadata.delete(request.node, request.key)

    async def GetNodeProcessMetrics(
        self,
        request: node_service_pb2.GetNodeProcessMetricsRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_service_pb2.GetNodeProcessMetricsResponse:
        _require_system()
        name = (await self._nodes.find(request.node)).record.name
        metrics = await self._nodes.process_metrics(name)
        return node_service_pb2.GetNodeProcessMetricsResponse(metrics=metrics)

    async def GetClusterResources(
        self,
        request: node_service_pb2.GetClusterResourcesRequest,
        context: grpc.aio.ServicerContext,
    ) -> node_service_pb2.ClusterResources:
        _require_system()
        policy = await self._nodes.placement_policy()
        records = [stored.record async for stored in self._nodes.all()]
        return resources.cluster_resources(records, policy)


def _require_system() -> None:
    if caller().namespace != SYSTEM:
        raise errors.Unauthenticated("unauthorized", reason="NOT_SYSTEM")
