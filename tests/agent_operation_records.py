"""Agent operation records written straight into a mesh's etcd, for tests
that need one on an instance whose agent never runs (the isolation
matrix's victim, whose instance ends in error)."""

from __future__ import annotations

import asyncio
import time
import uuid as uuid_module
from typing import Any

from sfmesh.v1 import agent_operation_pb2, instance_pb2

from devmesh.mesh import Mesh
from services.api.instances import agent_rules
from services.common.store import Put, Store, key


def put_agent_operation(mesh: Mesh, instance: dict[str, Any]) -> dict[str, Any]:
    """Write a `complete` execute of `echo` on `instance` (a view); its uuid."""
    uuid = str(uuid_module.uuid4())
    record = agent_rules.new_record(
        uuid=uuid,
        instance=instance_pb2.Instance(
            uuid=instance["uuid"], namespace=instance["namespace"], node=instance["node"] or ""
        ),
        commands=[agent_rules.execute_command("echo")],
        deadline_seconds=agent_rules.DEFAULT_DEADLINE,
        now=time.time(),
        created_ns=time.time_ns(),
        request_id="test",
    )
    record.operation.state = agent_operation_pb2.AGENT_OPERATION_STATE_COMPLETE
    record.operation.results.get_or_create_struct("0").update(
        {"command-line": "echo", "result": True, "return-code": 0, "stdout": "\n", "stderr": ""}
    )

    async def write() -> None:
        store = Store(f"127.0.0.1:{mesh.ports.etcd_client}")
        try:
            assert await store.commit(
                [
                    Put(key(agent_rules.OPERATION, uuid), record.SerializeToString(), 0),
                    Put(key(agent_rules.BY_INSTANCE, record.index_key), uuid.encode(), 0),
                ]
            )
        finally:
            await store.close()

    asyncio.run(write())
    return {"uuid": uuid}
