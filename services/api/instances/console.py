"""The serial console routes of InstanceService (reference §1.11): read the
tail of the log, or empty it. No state is required, only a node: an
instance not placed anywhere has no log, and reads as empty."""

from __future__ import annotations

from google.api import httpbody_pb2
from google.protobuf import empty_pb2
from sfmesh.v1 import instance_service_pb2

from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.instances.lookup import InstanceLookup
from services.common import errors

DEFAULT_LENGTH = 10240
MOST = 3 * 1024 * 1024
"""The most one read returns (the tail), under gRPC's 4 MiB message limit."""
CONTENT_TYPE = "application/octet-stream"


def console_length(request: instance_service_pb2.GetConsoleDataRequest) -> int:
    """How many bytes to read: unset or 0 means the default, -1 all (at most
    the last 3 MiB). Pure."""
    length = request.length if request.HasField("length") else 0
    if length < -1:
        raise errors.InvalidArgument("length must be -1 (all), 0 (the default) or positive")
    if length == -1 or length > MOST:
        return MOST
    return length or DEFAULT_LENGTH


class Console:
    """Reads and empties console logs on the node hosting the instance."""

    def __init__(self, lookup: InstanceLookup, events: Events, node_agents: NodeAgents) -> None:
        self._lookup = lookup
        self._events = events
        self._node_agents = node_agents

    async def read(
        self, request: instance_service_pb2.GetConsoleDataRequest
    ) -> httpbody_pb2.HttpBody:
        """The tail of the log, `console_length` bytes long."""
        length = console_length(request)
        instance = (await self._lookup.resolve(request.ref)).record.instance
        data = b""
        if instance.node:
            data = await self._node_agents.read_console(instance.node, instance.uuid, length)
        return httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=data)

    async def clear(self, ref: str) -> empty_pb2.Empty:
        """Empty the log, and record that it was."""
        instance = (await self._lookup.resolve(ref)).record.instance
        if instance.node:
            await self._node_agents.clear_console(instance.node, instance.uuid)
        self._events.audit(instance.uuid, "console log cleared")
        return empty_pb2.Empty()
