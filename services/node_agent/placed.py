"""The instances placed on this node, as etcd holds them (an
`InstanceFollower` selecting this node's records)."""

from __future__ import annotations

from collections.abc import Callable

from sfmesh.v1 import instance_pb2

from services.common import instance_states as states
from services.common.instance_follower import InstanceFollower
from services.common.instance_store import InstanceStore


class PlacedInstances(InstanceFollower):
    """This node's instance records, and a callback for each that changes."""

    def __init__(self, instances: InstanceStore, node: str, changed: Callable[[str], None]) -> None:
        super().__init__(instances, lambda instance: instance.node == node, changed)

    def hosted(self) -> list[instance_pb2.Instance]:
        """Instances placed here and not deleted: what this node answers for."""
        return [instance for instance in self.instances() if instance.state != states.DELETED]
