"""Which nodes the api asks to hold an upload or fetch an image: only those
whose agent answers, although a dead agent's record still says `created`
for the scheduler's grace period."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from sfmesh.v1 import node_service_pb2, records_pb2

from services.api.clients.node_agents import NodeAgents
from services.common.main import service_authority
from services.common.secrets import load_or_create_secret
from services.common.store import Delete, Put, Store, key
from services.common.tokens import InternalCredentials
from services.common.transport import Transport


async def test_only_nodes_whose_agent_answers_are_chosen(etcd: str, tmp_path: Path) -> None:
    store = Store(etcd)
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    addresses = {"alive": f"127.0.0.1:{port}", "dead": "127.0.0.1:1"}
    for name, address in addresses.items():
        node = records_pb2.NodeRecord(name=name, state=node_service_pb2.NODE_STATE_CREATED)
        node.facts.address = address
        assert await store.commit([Put(key("node", name), node.SerializeToString())])
    authority = service_authority(
        tmp_path, Transport(), user_secret=load_or_create_secret(tmp_path / "jwt.secret")
    )
    agents = NodeAgents(store, InternalCredentials(authority, "api-test"), transport=Transport())
    try:
        assert await agents.answering(["dead", "alive", "unknown"]) == ["alive"]
    finally:
        await agents.close()
        await server.stop(0)
        await store.commit([Delete(key("node", name)) for name in addresses])
        await store.close()
