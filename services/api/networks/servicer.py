"""NetworkService: create, list, read and delete networks, list their
address reservations, and float interfaces (other-apis §1, §2). A network
owns its VXLAN id and its network, gateway and broadcast addresses from the
moment it is written; node agents build its data plane where instances use
it. `GET /networks/floating/addresses` shows the floating pool, to system.

Differences from Shaken Fist (docs/compatibility.md): `provide_dhcp: false`
and `provide_nat: false` are honoured, and IPv6 blocks are refused (400)
rather than accepted and left unusable.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid as uuid_module

import grpc
from google.protobuf import empty_pb2, struct_pb2
from sfmesh.v1 import instance_pb2, network_service_pb2, network_service_pb2_grpc, records_pb2

from services.api import sizes
from services.api.clients.events import NETWORK, Events
from services.api.clients.node_agents import NodeAgents
from services.api.metadata.handler import MetadataHandler
from services.api.namespaces import rules as namespace_rules
from services.api.namespaces.store import NamespaceStore
from services.api.networks import ipam
from services.api.networks.floating import Floating
from services.api.networks.lookup import LISTED, NetworkLookup
from services.api.networks.ping import Ping
from services.api.networks.store import NetworkStore, StoredNetwork
from services.api.visibility import SYSTEM, can_see
from services.common import errors, instance_states
from services.common.addresses import FLOATING, reservation
from services.common.instance_store import InstanceStore, interface_of
from services.common.interceptors import caller
from services.common.wire import wire_name

State = network_service_pb2.NetworkState
NETWORK_VERSION = 6
VXLAN_IDS = (1, 2**24 - 1)
CREATE_ATTEMPTS = 5


def network_metadata(record: records_pb2.NetworkRecord, ref: str) -> struct_pb2.Struct:
    """A network's metadata in its record. Pure."""
    return record.network.metadata


def interface_metadata(record: records_pb2.InstanceRecord, uuid: str) -> struct_pb2.Struct:
    """The metadata of interface `uuid`, in its instance's record. Pure."""
    return interface_of(record, uuid).metadata


class NetworkServicer(network_service_pb2_grpc.NetworkServiceServicer):
    """Networks and their addresses in etcd. Ping, floating and metadata
    routes are delegated to handlers that are given what they use."""

    def __init__(
        self,
        networks: NetworkStore,
        namespaces: NamespaceStore,
        instances: InstanceStore,
        events: Events,
        node_agents: NodeAgents,
        rng: random.Random | None = None,
    ) -> None:
        self._events = events
        self._networks = networks
        self._namespaces = namespaces
        self._instances = instances
        self._rng = rng or random.SystemRandom()
        self._lookup = NetworkLookup(networks, instances)
        self._ping = Ping(self._lookup, networks, instances, node_agents, events)
        self._floating = Floating(self._lookup, instances, networks, events, self._rng)
        self._network_metadata = MetadataHandler(
            find=self._lookup.network, metadata_of=network_metadata, update=networks.update
        )
        self._interface_metadata = MetadataHandler(
            find=self._lookup.interface_holder,
            metadata_of=interface_metadata,
            update=instances.update,
            bounded=True,
        )

    async def CreateNetwork(
        self, request: network_service_pb2.CreateNetworkRequest, context: grpc.aio.ServicerContext
    ) -> network_service_pb2.Network:
        namespace = await self._target_namespace(request)
        block = ipam.parse_netblock(request.netblock)
        sizes.check_length("name", request.name, sizes.NAME_CHARS)
        network = network_service_pb2.Network(
            uuid=str(uuid_module.uuid4()),
            state=State.NETWORK_STATE_CREATED,
            version=NETWORK_VERSION,
            name=request.name,
            namespace=namespace,
            netblock=request.netblock,
            provide_dhcp=request.provide_dhcp if request.HasField("provide_dhcp") else True,
            provide_nat=request.provide_nat if request.HasField("provide_nat") else True,
            provide_dns=request.provide_dns if request.HasField("provide_dns") else False,
        )
        network.metadata.SetInParent()
        now = time.time()
        held = [
            reservation(address, kind, ["network", network.uuid], now)
            for address, kind in ipam.held_by_network(block)
        ]
        for _ in range(CREATE_ATTEMPTS):  # a random VXLAN id already taken: draw again
            network.vxlan_id = self._rng.randint(*VXLAN_IDS)
            record = records_pb2.NetworkRecord(network=network, created_at=now)
            if await self._networks.create(record, held):
                self._events.audit(network.uuid, "create request from REST API", kind=NETWORK)
                self._events.attribute_set(network.uuid, "state", "created", kind=NETWORK)
                return network
        raise errors.Aborted("could not find a free VXLAN id; try again")

    async def ListNetworks(
        self, request: network_service_pb2.ListNetworksRequest, context: grpc.aio.ServicerContext
    ) -> network_service_pb2.ListNetworksResponse:
        namespace = caller().namespace
        reply = network_service_pb2.ListNetworksResponse()
        async for stored in self._networks.all():
            network = stored.record.network
            if can_see(namespace, network.namespace) and (request.all or network.state in LISTED):
                reply.networks.append(network)
        return reply

    async def GetNetwork(
        self, request: network_service_pb2.GetNetworkRequest, context: grpc.aio.ServicerContext
    ) -> network_service_pb2.Network:
        return (await self._lookup.network(request.ref)).record.network

    async def DeleteNetwork(
        self, request: network_service_pb2.DeleteNetworkRequest, context: grpc.aio.ServicerContext
    ) -> network_service_pb2.Network:
        stored = await self._lookup.network(request.ref)
        network = stored.record.network
        if request.HasField("namespace") and request.namespace != network.namespace:
            raise errors.NotFound("network not in namespace")
        if network.state == State.NETWORK_STATE_DELETED:
            return network
        return await self._delete(stored, "delete request from REST API")

    async def DeleteAllNetworks(
        self,
        request: network_service_pb2.DeleteAllNetworksRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.DeleteAllNetworksResponse:
        given = request.namespace if request.HasField("namespace") else None
        exists = given is not None and await self._namespaces.get(given) is not None
        target = namespace_rules.delete_all_target(
            caller().namespace, given, exists, request.confirm
        )
        reply = network_service_pb2.DeleteAllNetworksResponse()
        async for stored in self._networks.all():
            network = stored.record.network
            if can_see(target, network.namespace) and network.state in LISTED:
                reply.uuids.append(network.uuid)
                with contextlib.suppress(errors.NotFound):  # deleted meanwhile: fine
                    await self._delete(stored, "delete request via delete all from REST API")
        return reply

    async def _delete(self, stored: StoredNetwork, audit: str) -> network_service_pb2.Network:
        """Delete a network: at once when no instance holds an address on it,
        else `delete-wait` until the last one is deleted (§1.7)."""
        held = await self._networks.addresses(stored.record.network.uuid)
        if any(a.reservation.type == "instance" for a in held):

            def waiting(record: records_pb2.NetworkRecord) -> None:
                if record.network.state == State.NETWORK_STATE_DELETED:
                    raise errors.NotFound("network not found")
                record.network.state = State.NETWORK_STATE_DELETE_WAIT

            network = (await self._networks.update(stored, waiting)).network
            # The last instance may have gone between the read above and this
            # write, its release seeing no delete-wait: finish here then.
            if await self._networks.finish_if_unused(network.uuid):
                network = await self._view(network.uuid)
        else:
            network = (await self._networks.finish_delete(stored)).network
        self._events.audit(network.uuid, audit, kind=NETWORK)
        state = wire_name(State.DESCRIPTOR, network.state)
        self._events.attribute_set(network.uuid, "state", state, kind=NETWORK)
        return network

    async def ListNetworkEvents(
        self,
        request: network_service_pb2.ListNetworkEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.ListNetworkEventsResponse:
        network = (await self._lookup.network(request.ref)).record.network
        events = await self._events.listed(NETWORK, network.uuid, request)
        return network_service_pb2.ListNetworkEventsResponse(events=events)

    async def ListNetworkAddresses(
        self,
        request: network_service_pb2.ListNetworkAddressesRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.ListNetworkAddressesResponse:
        if request.ref == FLOATING and caller().namespace == SYSTEM:
            pool = FLOATING
        else:
            pool = (await self._lookup.network(request.ref)).record.network.uuid
        held = [a.reservation for a in await self._networks.addresses(pool)]
        held.sort(key=lambda reservation: reservation.address)  # by string, as upstream
        return network_service_pb2.ListNetworkAddressesResponse(addresses=held)

    async def ListNetworkInterfaces(
        self,
        request: network_service_pb2.ListNetworkInterfacesRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.ListNetworkInterfacesResponse:
        network = (await self._lookup.network(request.ref)).record.network
        reply = network_service_pb2.ListNetworkInterfacesResponse()
        for instance_uuid in await self._networks.instances_on(network.uuid):
            stored = await self._instances.get(instance_uuid)
            if stored is not None and stored.record.instance.state != instance_states.DELETED:
                reply.interfaces.extend(
                    nic
                    for nic in stored.record.instance.interfaces
                    if nic.network_uuid == network.uuid
                )
        return reply

    async def GetInterface(
        self, request: network_service_pb2.GetInterfaceRequest, context: grpc.aio.ServicerContext
    ) -> instance_pb2.Interface:
        _, nic = await self._lookup.interface(request.uuid)
        return nic

    async def FloatInterface(
        self, request: network_service_pb2.FloatInterfaceRequest, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        return await self._floating.float_address(request.uuid)

    async def DefloatInterface(
        self,
        request: network_service_pb2.DefloatInterfaceRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._floating.defloat_address(request.uuid)

    async def PingNetworkAddress(
        self,
        request: network_service_pb2.PingNetworkAddressRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.PingNetworkAddressResponse:
        return await self._ping.ping(request)

    async def GetNetworkMetadata(
        self,
        request: network_service_pb2.GetNetworkMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.GetNetworkMetadataResponse:
        metadata = await self._network_metadata.get(request.ref)
        return network_service_pb2.GetNetworkMetadataResponse(metadata=metadata)

    async def SetNetworkMetadata(
        self,
        request: network_service_pb2.SetNetworkMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._network_metadata.set(request.ref, request.key, request.value)

    async def DeleteNetworkMetadata(
        self,
        request: network_service_pb2.DeleteNetworkMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._network_metadata.delete(request.ref, request.key)

    async def GetInterfaceMetadata(
        self,
        request: network_service_pb2.GetInterfaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> network_service_pb2.GetInterfaceMetadataResponse:
        metadata = await self._interface_metadata.get(request.uuid)
        return network_service_pb2.GetInterfaceMetadataResponse(metadata=metadata)

    async def SetInterfaceMetadata(
        self,
        request: network_service_pb2.SetInterfaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._interface_metadata.set(request.uuid, request.key, request.value)

    async def DeleteInterfaceMetadata(
        self,
        request: network_service_pb2.DeleteInterfaceMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> empty_pb2.Empty:
        return await self._interface_metadata.delete(request.uuid, request.key)

    async def _target_namespace(self, request: network_service_pb2.CreateNetworkRequest) -> str:
        """§1.2: a named namespace must exist (404); only system creates in
        another one (401; trust does not help)."""
        own = caller().namespace
        if not request.HasField("namespace") or not request.namespace:
            return own
        if await self._namespaces.get(request.namespace) is None:
            raise errors.NotFound("namespace not found")
        if request.namespace != own and own != SYSTEM:
            raise errors.Unauthenticated(
                "only admins can create resources in a different namespace"
            )
        return request.namespace

    async def _view(self, uuid: str) -> network_service_pb2.Network:
        stored = await self._networks.get(uuid)
        if stored is None:
            raise errors.NotFound("network not found")
        return stored.record.network
