"""The six power operations of InstanceService (reference §1.9, §3.3).

Each answers 406 unless the instance is `created`, records its audit event,
and is carried out by the node agent hosting the instance, which answers
once libvirt has acted and the record shows the new power state: 409 when
the hypervisor refuses, 503 when the agent cannot be reached.
"""

from __future__ import annotations

from google.protobuf import empty_pb2
from sfmesh.v1 import instance_pb2, node_agent_service_pb2

from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.instances.history import state_name
from services.api.instances.lookup import InstanceLookup
from services.common import errors
from services.common import instance_states as states
from services.common.interceptors import request_id

Operation = node_agent_service_pb2.PowerOperation
LABELS = {
    Operation.POWER_OPERATION_REBOOT_SOFT: "soft reboot",
    Operation.POWER_OPERATION_REBOOT_HARD: "hard reboot",
    Operation.POWER_OPERATION_POWER_OFF: "power off",
    Operation.POWER_OPERATION_POWER_ON: "power on",
    Operation.POWER_OPERATION_PAUSE: "pause",
    Operation.POWER_OPERATION_UNPAUSE: "unpause",
}
"""The audit name of each operation."""


def check_ready(instance: instance_pb2.Instance) -> None:
    """Power operations need a `created` instance. Pure."""
    if instance.state != states.CREATED:
        raise errors.NotReady(
            f"instance {instance.uuid} is not ready ({state_name(instance.state)})"
        )


class Power:
    """Carries out power operations on the node agent hosting the instance."""

    def __init__(self, lookup: InstanceLookup, events: Events, node_agents: NodeAgents) -> None:
        self._lookup = lookup
        self._events = events
        self._node_agents = node_agents

    async def change(self, ref: str, operation: Operation) -> empty_pb2.Empty:
        """Apply `operation` to the instance `ref` names."""
        instance = (await self._lookup.resolve(ref)).record.instance
        check_ready(instance)
        label = LABELS[operation]
        self._events.audit(instance.uuid, f"{label} request from REST API")
        try:
            await self._node_agents.change_power(
                instance.node, instance.uuid, operation, request_id()
            )
        except errors.Conflict:
            self._events.audit(instance.uuid, f"{label} failed")
            raise
        return empty_pb2.Empty()
