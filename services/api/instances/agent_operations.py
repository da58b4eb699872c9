"""The agent-operation routes of InstanceService (guest-access reference
§5.6, with the rules of `agent_rules.py`).

A POST checks the instance (`agent_rules.check_usable`) and, for a put,
that the caller reaches the blob (404 `blob not found`, as blob reads),
writes the operation `queued` (a put: `preflight`, its blob to be made
local) with its index entry in one create-only transaction, asks the
hosting node agent to queue it (`RunAgentOperation`) and answers
the view at once; the node agent walks it to `complete` or `error`. A node
agent that cannot be reached then leaves it `queued`: it queues its
`queued` operations again when it starts.

Reads by uuid answer 404 `agent operation not found` for another
namespace's operation (system reads all). A delete marks the operation
`deleted` (with `deleted_at`) and releases its output blobs
(`output_blobs`: the fetched file, output moved into blobs), which go
`deleted` unless a label holds them (Shaken Fist leaks them, quirk 11);
the record and its index entry stay readable, as Shaken Fist keeps deleted
operations, until the sweep (`agent_purge.py`) removes them.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid as uuid_module
from collections.abc import Mapping, Sequence
from typing import Any

from sfmesh.v1 import agent_operation_pb2, artifact_pb2, instance_pb2, records_pb2

from services.api.artifacts.lookup import ArtifactLookup
from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.instances import agent_rules as rules
from services.api.instances.lookup import InstanceLookup
from services.api.visibility import can_see
from services.common import errors
from services.common.interceptors import caller, request_id
from services.common.store import Put, Store, key, kind_prefix

log = logging.getLogger("sfmesh.api.agentops")

NOT_FOUND = "agent operation not found"


class AgentOperations:
    """Creates, lists, reads and deletes agent operations."""

    def __init__(
        self,
        lookup: InstanceLookup,
        store: Store,
        events: Events,
        node_agents: NodeAgents,
        blobs: ArtifactLookup,
    ) -> None:
        self._blobs = blobs
        self._lookup = lookup
        self._store = store
        self._events = events
        self._node_agents = node_agents

    async def execute(
        self, ref: str, command_line: str, deadline_seconds: int | None
    ) -> agent_operation_pb2.AgentOperation:
        """A new operation running `command_line` in the instance's guest."""
        command = rules.execute_command(command_line)
        deadline = rules.deadline(deadline_seconds)
        instance = (await self._lookup.resolve(ref)).record.instance
        return await self._create(instance, [command], deadline, "execute")

    async def get(
        self, ref: str, path: str, deadline_seconds: int | None
    ) -> agent_operation_pb2.AgentOperation:
        """A new operation fetching `path` from the instance's guest."""
        command = rules.get_command(path)
        deadline = rules.deadline(deadline_seconds)
        instance = (await self._lookup.resolve(ref)).record.instance
        return await self._create(instance, [command], deadline, "get")

    async def put(
        self,
        ref: str,
        blob_uuid: str,
        path: str,
        mode: Any,
        deadline_seconds: int | None,
    ) -> agent_operation_pb2.AgentOperation:
        """A new operation writing blob `blob_uuid` to `path` in the guest."""
        commands = rules.put_commands(blob_uuid, path, rules.check_mode(mode))
        deadline = rules.deadline(deadline_seconds)
        instance = (await self._lookup.resolve(ref)).record.instance
        blob = (await self._blobs.blob(blob_uuid, caller().namespace)).record.blob
        if blob.state != artifact_pb2.BLOB_STATE_CREATED:
            raise errors.Conflict(f"blob {blob_uuid} is not created", reason="BLOB_NOT_CREATED")
        return await self._create(instance, commands, deadline, "put", preflight=True)

    async def list(self, ref: str, *, all: bool) -> list[agent_operation_pb2.AgentOperation]:
        """The instance's operations, oldest first."""
        instance = (await self._lookup.read(ref)).record.instance
        prefix = kind_prefix(rules.BY_INSTANCE) + f"{instance.uuid}/".encode()
        found = []
        async for item in self._store.list_prefix(prefix):
            stored = await self._store.get(key(rules.OPERATION, item.value.decode()))
            if stored is None:  # skipped, as Shaken Fist does
                continue
            operation = records_pb2.AgentOperationRecord.FromString(stored.value).operation
            if rules.listed(operation, all=all):
                found.append(operation)
        return found

    async def read(self, uuid: str) -> agent_operation_pb2.AgentOperation:
        """The view of operation `uuid`, visible to the caller."""
        record, _revision = await self._visible(uuid)
        return record.operation

    async def delete(self, uuid: str) -> agent_operation_pb2.AgentOperation:
        """Mark operation `uuid` deleted and release its output blobs."""
        record, revision = await self._visible(uuid)
        at = key(rules.OPERATION, uuid)

        def change(fresh: records_pb2.AgentOperationRecord) -> None:
            rules.mark_deleted(fresh, time.time())

        written = await self._store.update(
            at, record, revision, change, lambda: errors.NotFound(NOT_FOUND)
        )
        if record.operation.state != rules.DELETED:
            self._events.audit(
                written.operation.instance_uuid,
                "agent operation deleted",
                {"operation": uuid, "blobs": list(written.output_blobs)},
            )
        for blob_uuid in written.output_blobs:
            with contextlib.suppress(errors.SfmeshError):  # the purge's, then
                await self._release_blob(blob_uuid)
        return written.operation

    async def _create(
        self,
        instance: instance_pb2.Instance,
        commands: Sequence[Mapping[str, Any]],
        deadline_seconds: int,
        label: str,
        *,
        preflight: bool = False,
    ) -> agent_operation_pb2.AgentOperation:
        rules.check_usable(instance)
        uuid = str(uuid_module.uuid4())
        record = rules.new_record(
            uuid=uuid,
            instance=instance,
            commands=commands,
            deadline_seconds=deadline_seconds,
            now=time.time(),
            created_ns=time.time_ns(),
            request_id=request_id(),
            preflight=preflight,
        )
        written = await self._store.commit(
            [
                Put(key(rules.OPERATION, uuid), record.SerializeToString(), 0),
                Put(key(rules.BY_INSTANCE, record.index_key), uuid.encode(), 0),
            ]
        )
        if not written:
            raise errors.Conflict(f"agent operation {uuid} exists already")
        self._events.audit(
            instance.uuid, f"agent {label} request from REST API", {"operation": uuid}
        )
        try:
            await self._node_agents.run_agent_operation(instance.node, instance.uuid, uuid)
        except errors.SfmeshError as exc:  # queued again when that node agent starts
            log.warning(
                "agent operation not handed to its node agent: %s",
                exc.message,
                extra={"fields": {"operation": uuid, "node": instance.node}},
            )
        return record.operation

    async def _visible(self, uuid: str) -> tuple[records_pb2.AgentOperationRecord, int]:
        item = await self._store.get(key(rules.OPERATION, uuid)) if uuid else None
        if item is None:
            raise errors.NotFound(NOT_FOUND)
        record = records_pb2.AgentOperationRecord.FromString(item.value)
        if not can_see(caller().namespace, record.operation.namespace):
            raise errors.NotFound(NOT_FOUND)
        return record, item.mod_revision

    async def _release_blob(self, blob_uuid: str) -> None:
        at = key("blob", blob_uuid)
        item = await self._store.get(at)
        if item is None:
            return
        record = records_pb2.BlobRecord.FromString(item.value)
        if not rules.release_output(records_pb2.BlobRecord.FromString(item.value), time.time()):
            return

        def change(fresh: records_pb2.BlobRecord) -> None:
            rules.release_output(fresh, time.time())

        await self._store.update(
            at,
            record,
            item.mod_revision,
            change,
            lambda: errors.NotFound(f"blob {blob_uuid} not found"),
        )
