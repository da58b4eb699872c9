"""services/node_agent/servicer.py: every RPC of the contract is served,
none left to the generated base's UNIMPLEMENTED."""

from __future__ import annotations

import inspect

from sfmesh.v1 import node_agent_service_pb2, node_agent_service_pb2_grpc

from services.node_agent.servicer import NodeAgentServicer

SERVICE = node_agent_service_pb2.DESCRIPTOR.services_by_name["NodeAgentService"]


def test_every_rpc_is_implemented() -> None:
    base = node_agent_service_pb2_grpc.NodeAgentServiceServicer
    missing = [
        method.name
        for method in SERVICE.methods
        if getattr(NodeAgentServicer, method.name) is getattr(base, method.name)
    ]
    assert missing == []


def test_server_streams_are_async_generators() -> None:
    """grpc.aio serves a stream only from an async generator function; a
    method that returns one answers UNKNOWN (unless an interceptor wraps it)."""
    streams = [m.name for m in SERVICE.methods if m.server_streaming]
    assert streams
    assert all(inspect.isasyncgenfunction(getattr(NodeAgentServicer, name)) for name in streams)
