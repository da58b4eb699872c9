"""The network or interface a request names, visible to the caller, else
404. A network is found by UUID in any state, or by name among the listed
states; an interface through the index of NICs (they live in their
instance's record), visible to whoever sees the instance."""

from __future__ import annotations

from sfmesh.v1 import instance_pb2, network_service_pb2

from services.api.networks.store import NetworkStore, StoredNetwork
from services.api.visibility import as_uuid, can_see
from services.common import errors
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.interceptors import caller

State = network_service_pb2.NetworkState
LISTED = frozenset(
    {
        State.NETWORK_STATE_INITIAL,
        State.NETWORK_STATE_CREATED,
        State.NETWORK_STATE_ERROR,
        State.NETWORK_STATE_DELETE_WAIT,
    }
)
"""States listed by default and found by name."""


async def resolve_network(
    networks: NetworkStore, namespace: str, ref: str, not_found: str
) -> StoredNetwork:
    """The network `ref` names (UUID in any state, or a name among the
    listed states), owned by `namespace` unless it is system."""
    canonical = as_uuid(ref)
    if canonical is not None:
        stored = await networks.get(canonical)
        if stored is None or not can_see(namespace, stored.record.network.namespace):
            raise errors.NotFound(not_found)
        return stored
    matches = [
        stored
        async for stored in networks.all()
        if stored.record.network.name == ref
        and stored.record.network.state in LISTED
        and can_see(namespace, stored.record.network.namespace)
    ]
    if not matches:
        raise errors.NotFound(not_found)
    if len(matches) > 1:
        raise errors.InvalidArgument(
            f'multiple networks have the name "{ref}" in namespace "{namespace}"'
        )
    return matches[0]


class NetworkLookup:
    """Resolves network refs and interface uuids for the network routes."""

    def __init__(self, networks: NetworkStore, instances: InstanceStore) -> None:
        self._networks = networks
        self._instances = instances

    async def network(self, ref: str) -> StoredNetwork:
        """The network `ref` names, visible to the caller."""
        return await resolve_network(self._networks, caller().namespace, ref, "network not found")

    async def interface(self, uuid: str) -> tuple[StoredInstance, instance_pb2.Interface]:
        """The interface `uuid` and the instance record holding it."""
        stored = await self._instances.holding(uuid)
        if stored is not None and can_see(caller().namespace, stored.record.instance.namespace):
            for nic in stored.record.instance.interfaces:
                if nic.uuid == uuid:
                    return stored, nic
        raise errors.NotFound("interface not found")

    async def interface_holder(self, uuid: str) -> StoredInstance:
        """The instance record holding the interface `uuid`."""
        stored, _ = await self.interface(uuid)
        return stored
