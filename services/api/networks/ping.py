"""GET /networks/{ref}/ping/{address} (other-apis §1.14): ten pings from
the network's namespace on a node that carries it, sent through that node's
agent; ping's lines come back whether the address answered or not."""

from __future__ import annotations

import ipaddress

from sfmesh.v1 import network_service_pb2, node_agent_service_pb2

from services.api.clients.events import NETWORK, Events
from services.api.clients.node_agents import NodeAgents
from services.api.networks import ipam
from services.api.networks.lookup import NetworkLookup
from services.api.networks.store import NetworkStore
from services.common import errors, instance_states
from services.common.instance_store import InstanceStore
from services.common.wire import wire_name

State = network_service_pb2.NetworkState


class Ping:
    """Pings addresses of networks through the node agents carrying them."""

    def __init__(
        self,
        lookup: NetworkLookup,
        networks: NetworkStore,
        instances: InstanceStore,
        node_agents: NodeAgents,
        events: Events,
    ) -> None:
        self._lookup = lookup
        self._networks = networks
        self._instances = instances
        self._node_agents = node_agents
        self._events = events

    async def ping(
        self, request: network_service_pb2.PingNetworkAddressRequest
    ) -> network_service_pb2.PingNetworkAddressResponse:
        """ping's lines; 400 for a bad address or one outside the block, 406
        unless the network is created, 409 when no node carries it yet."""
        network = (await self._lookup.network(request.ref)).record.network
        if network.state != State.NETWORK_STATE_CREATED:
            state = wire_name(State.DESCRIPTOR, network.state)
            raise errors.NotReady(f"network {network.uuid} is not ready ({state})")
        try:
            address = ipaddress.ip_address(request.address)
        except ValueError as exc:
            raise errors.InvalidArgument("invalid address") from exc
        if address not in ipam.parse_netblock(network.netblock):
            raise errors.InvalidArgument("ping request for address outside network block")
        self._events.audit(
            network.uuid, "ping request from REST API", {"address": str(address)}, kind=NETWORK
        )
        done = await self._ping_from_a_carrier(network.uuid, network.vxlan_id, str(address))
        if done.exit_code not in (0, 1):  # 1: no answer, which is an answer too
            raise errors.SfmeshError(f"ping failed (exit {done.exit_code}): {done.stderr.strip()}")
        return network_service_pb2.PingNetworkAddressResponse(
            stdout=done.stdout.split("\n"), stderr=done.stderr.split("\n")
        )

    async def _ping_from_a_carrier(
        self, network_uuid: str, vxlan_id: int, address: str
    ) -> node_agent_service_pb2.PingOnNetworkResponse:
        """Ping from the first node carrying the network that answers: those
        hosting its created instances."""
        carriers = []
        for instance_uuid in await self._networks.instances_on(network_uuid):
            stored = await self._instances.get(instance_uuid)
            if stored is None or stored.record.instance.state != instance_states.CREATED:
                continue
            if stored.record.instance.node not in carriers:
                carriers.append(stored.record.instance.node)
        failure: errors.SfmeshError = errors.Conflict(
            f"no instance uses network {network_uuid} yet, so no node carries it",
            reason="NETWORK_NOT_CARRIED",
        )
        for node in carriers:
            try:
                return await self._node_agents.ping(node, vxlan_id, address)
            except (errors.Conflict, errors.Unavailable) as exc:  # that node cannot: the next
                failure = exc
        raise failure
