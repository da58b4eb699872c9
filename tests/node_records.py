"""Node records written straight into a mesh's etcd, for tests that need a
node no agent runs: `missing`, as the scheduler leaves a node whose agent
went away."""

from __future__ import annotations

import asyncio
import time

from sfmesh.v1 import node_service_pb2, records_pb2, scheduler_service_pb2

from devmesh.mesh import Mesh
from services.common.store import Put, Store, key


def put_node(mesh: Mesh, name: str) -> str:
    """Write a `missing` node record named `name`; its name."""
    record = records_pb2.NodeRecord(
        name=name,
        state=node_service_pb2.NODE_STATE_MISSING,
        facts=scheduler_service_pb2.HypervisorFacts(node=name, address="127.0.0.1:9"),
        lastseen=time.time(),
    )

    async def write() -> None:
        store = Store(f"127.0.0.1:{mesh.ports.etcd_client}")
        try:
            assert await store.commit([Put(key("node", name), record.SerializeToString(), 0)])
        finally:
            await store.close()

    asyncio.run(write())
    return name
