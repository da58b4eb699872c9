"""Pure rules of agent operations (guest-access reference §5.5-§5.7, with
the differences docs/compatibility.md lists): when an instance takes one,
the commands and view of a new one, which are listed, what a delete
changes, and when the sweep (`agent_purge.py`) removes a record.

Refusals, in order: no `sf-agent` side channel → 400 (Shaken Fist: 500,
quirk 10); the instance still being built → 406 (the client retries), in
any other state but `created` → 409 (no retry helps, quirk 2); powered off
or paused → 400 `instance agent not ready (...)`, as Shaken Fist; on, with
an agent not ready yet (booting, restarting) → 406, so the client retries
until it is ready (Shaken Fist: 400).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2
from sfmesh.v1 import agent_operation_pb2, artifact_pb2, instance_pb2, records_pb2

from services.api.instances.history import state_name
from services.common import errors
from services.common import instance_states as states
from services.common import side_channels as channels

OPERATION = "agent_operation"
"""The etcd kind of operation records (`/sfmesh/v1/agent_operation/<uuid>`)."""
BY_INSTANCE = "instance_agent_operation"
"""The etcd kind of the per-instance index
(`/sfmesh/v1/instance_agent_operation/<instance>/<created ns>-<uuid>`)."""
VIEW_VERSION = 1
DEFAULT_DEADLINE = 600
"""Seconds a command may take unless the request says (later Shaken Fist's default)."""
MAX_DEADLINE = 86400
BUILDING = frozenset({states.INITIAL, states.PREFLIGHT, states.CREATING})

QUEUED = agent_operation_pb2.AGENT_OPERATION_STATE_QUEUED
PREFLIGHT = agent_operation_pb2.AGENT_OPERATION_STATE_PREFLIGHT
DELETED = agent_operation_pb2.AGENT_OPERATION_STATE_DELETED
WAITING = frozenset({PREFLIGHT, QUEUED})
"""States of operations not dequeued yet: the default listing (quirk 12)."""


def check_usable(instance: instance_pb2.Instance) -> None:
    """Raise unless the instance's agent takes operations now. Pure."""
    if channels.AGENT not in instance.side_channels:
        raise errors.InvalidArgument(
            f"instance {instance.uuid} has no {channels.AGENT} side channel",
            reason="NO_AGENT_CHANNEL",
        )
    if instance.state != states.CREATED:
        message = f"instance {instance.uuid} is not ready ({state_name(instance.state)})"
        if instance.state in BUILDING:
            raise errors.NotReady(message)
        raise errors.Conflict(message, reason="INSTANCE_NOT_CREATED")
    agent_state = instance.agent_state if instance.HasField("agent_state") else None
    if agent_state is not None and agent_state.startswith("ready"):
        return
    said = "instance agent not ready"
    if agent_state:
        said = f"{said} ({agent_state})"
    if instance.power_state in (instance_pb2.POWER_STATE_OFF, instance_pb2.POWER_STATE_PAUSED):
        raise errors.InvalidArgument(said, reason="AGENT_NOT_READY")
    raise errors.NotReady(said, reason="AGENT_NOT_READY")


def deadline(requested: int | None) -> int:
    """The seconds each command may take. Pure. Raises InvalidArgument."""
    if requested is None:
        return DEFAULT_DEADLINE
    if not 1 <= requested <= MAX_DEADLINE:
        raise errors.InvalidArgument(f"deadline_seconds must be 1 to {MAX_DEADLINE}")
    return requested


def execute_command(command_line: str) -> dict[str, Any]:
    """The stored command of an execute (reference §5.6). Pure."""
    if not command_line:
        raise errors.InvalidArgument("command_line is required")
    return {"command": "execute", "commandline": command_line, "block-for-result": True}


def get_command(path: str) -> dict[str, Any]:
    """The stored command of a get. Pure."""
    if not path:
        raise errors.InvalidArgument("path is required")
    return {"command": "get-file", "path": path}


SYMBOLIC_MODE = re.compile(r"[ugoa]*([-+=]([rwxXst]*|[ugo]))+(,[ugoa]*([-+=]([rwxXst]*|[ugo]))+)*")
"""A symbolic mode as chmod(1) takes it (what the agent's symbolicmode applies)."""


def check_mode(mode: Any) -> int | str | None:
    """The mode of a put as the agent takes it: an integer (numeric strings
    too), a symbolic mode, or None for none. Pure. Raises InvalidArgument
    (Shaken Fist: 406, which the client would retry for nothing, quirk 2)."""
    if mode is None:
        return None
    if isinstance(mode, bool):
        raise errors.InvalidArgument(f"invalid mode: {mode}")
    if isinstance(mode, float) and mode.is_integer() and 0 <= mode <= 0o177777:
        return int(mode)
    if isinstance(mode, str):
        if mode.isdigit() and int(mode) <= 0o177777:
            return int(mode)
        if SYMBOLIC_MODE.fullmatch(mode):
            return mode
    raise errors.InvalidArgument(f"invalid mode: {mode}")


def put_commands(blob_uuid: str, path: str, mode: int | str | None) -> list[dict[str, Any]]:
    """The stored commands of a put: the blob written, then its mode. Pure."""
    if not blob_uuid:
        raise errors.InvalidArgument("blob_uuid is required")
    if not path:
        raise errors.InvalidArgument("path is required")
    commands: list[dict[str, Any]] = [{"command": "put-blob", "blob_uuid": blob_uuid, "path": path}]
    if mode is not None:
        commands.append({"command": "chmod", "path": path, "mode": mode})
    return commands


def new_record(
    *,
    uuid: str,
    instance: instance_pb2.Instance,
    commands: Iterable[Mapping[str, Any]],
    deadline_seconds: int,
    now: float,
    created_ns: int,
    request_id: str,
    preflight: bool = False,
) -> records_pb2.AgentOperationRecord:
    """The record of a new operation: `queued`, or `preflight` when the
    hosting node has something to prepare first (a put's blob). Pure."""
    operation = agent_operation_pb2.AgentOperation(
        uuid=uuid,
        state=PREFLIGHT if preflight else QUEUED,
        version=VIEW_VERSION,
        namespace=instance.namespace,
        instance_uuid=instance.uuid,
        created=now,
        deadline_seconds=deadline_seconds,
    )
    operation.metadata.SetInParent()
    operation.results.SetInParent()
    operation.commands.extend([struct_from(dict(command)) for command in commands])
    return records_pb2.AgentOperationRecord(
        operation=operation,
        node=instance.node,
        index_key=index_name(instance.uuid, created_ns, uuid),
        request_id=request_id,
    )


def struct_from(values: Mapping[str, Any]) -> struct_pb2.Struct:
    """A Struct of a plain mapping. Pure."""
    struct = struct_pb2.Struct()
    struct.update(dict(values))
    return struct


def index_name(instance_uuid: str, created_ns: int, uuid: str) -> str:
    """The name, under BY_INSTANCE, of an operation's index entry: ordered
    by creation within its instance. Pure."""
    return f"{instance_uuid}/{created_ns:020d}-{uuid}"


def listed(operation: agent_operation_pb2.AgentOperation, *, all: bool) -> bool:
    """Whether a listing shows an operation. Pure."""
    if operation.state == DELETED:
        return False
    return all or operation.state in WAITING


def mark_deleted(record: records_pb2.AgentOperationRecord, now: float) -> bool:
    """Make an operation `deleted` as of `now` (epoch seconds) in place;
    False when it already is. Pure."""
    if record.operation.state == DELETED:
        return False
    record.operation.state = DELETED
    record.deleted_at = now
    return True


def release_output(blob: records_pb2.BlobRecord, now: float) -> bool:
    """Let go of an operation's output blob in place: `deleted` as of `now`
    unless it already is, or a reference is counted on it (someone made it
    a label's version: the label keeps it, and its last reference deletes
    it, as `artifact_versions.change_references` does). Whether it changed.
    Pure."""
    if blob.blob.state == artifact_pb2.BLOB_STATE_DELETED or blob.blob.reference_count > 0:
        return False
    blob.blob.state = artifact_pb2.BLOB_STATE_DELETED
    blob.deleted_at = now
    return True


class Fate(enum.Enum):
    """What a sweep does with one operation record (`purge_fate`)."""

    KEEP = "keep"
    STAMP = "stamp"
    """`deleted` with no time of deletion (deleted before `deleted_at` was
    written): the sweep records the time it found it, and the delay runs
    from then."""
    REMOVE = "remove"
    """The record and its index entry go; its output blobs are released."""


def purge_fate(
    record: records_pb2.AgentOperationRecord,
    instance: records_pb2.InstanceRecord | None,
    now: float,
    delay: float,
) -> Fate:
    """Whether a sweep at `now` removes an operation: once it has been
    `deleted`, or its instance `deleted`, for `delay` seconds, and at once
    when its instance's record is gone (`instance` None: purged, or never
    there). Pure."""
    if instance is None:
        return Fate.REMOVE
    ended = [
        record.deleted_at if record.operation.state == DELETED else 0.0,
        instance.deleted_at if instance.instance.state == states.DELETED else 0.0,
    ]
    if any(0 < at <= now - delay for at in ended):
        return Fate.REMOVE
    if record.operation.state == DELETED and not record.deleted_at:
        return Fate.STAMP
    return Fate.KEEP
