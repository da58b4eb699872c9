"""Builds the api process: etcd stores, the system namespace, the servicers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sfmesh.v1 import (
    artifact_service_pb2_grpc,
    auth_service_pb2_grpc,
    instance_service_pb2_grpc,
    network_service_pb2_grpc,
    node_service_pb2_grpc,
    transfer_service_pb2_grpc,
)

from services.api.artifacts.bases import Bases
from services.api.artifacts.caching import Caching
from services.api.artifacts.deletion import ArtifactDeletion
from services.api.artifacts.finding import Finder
from services.api.artifacts.labels import Labels
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.servicer import ArtifactServicer
from services.api.artifacts.store import ArtifactStore
from services.api.artifacts.sweeper import ArtifactSweeper, SweepSettings
from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.clients.outbox import Outbox
from services.api.clients.scheduler import Scheduler
from services.api.instances.agent_operations import AgentOperations
from services.api.instances.agent_purge import AgentOperationPurge, PurgeSettings
from services.api.instances.browser_console import BrowserConsole
from services.api.instances.cache import InstanceCache
from services.api.instances.console_tickets import DEFAULT_TTL
from services.api.instances.creation import Creation
from services.api.instances.deletion import Finisher
from services.api.instances.hotplug import Hotplug
from services.api.instances.idempotency import IdempotencyKeys
from services.api.instances.lookup import InstanceLookup
from services.api.instances.purge import purge_forever
from services.api.instances.servicer import InstanceServicer
from services.api.instances.snapshots import Snapshots
from services.api.instances.validation import Limits
from services.api.namespaces.keys import ensure_system_namespace
from services.api.namespaces.revocation import Revocation
from services.api.namespaces.servicer import AuthServicer
from services.api.namespaces.store import NamespaceStore
from services.api.networks.backfill import backfill_nic_keys
from services.api.networks.servicer import NetworkServicer
from services.api.networks.store import NetworkStore
from services.api.nodes.retirement import Retirement
from services.api.nodes.servicer import NodeServicer
from services.api.nodes.states import NodeStates
from services.api.nodes.store import NodeStore
from services.api.token_secret import console_ticket_secret, user_token_secret
from services.api.transfers.blob_data import BlobData
from services.api.transfers.conversion import Conversion
from services.api.transfers.servicer import TransferServicer
from services.api.transfers.store import UploadStore
from services.api.transfers.sweeper import sweep_forever
from services.api.transfers.uploads import Uploads
from services.common.addresses import floating_pool
from services.common.config import MeshConfig
from services.common.instance_store import InstanceStore
from services.common.main import service_authority, service_emitter
from services.common.server import Servicer, serve, start_server
from services.common.store import Store
from services.common.tokens import InternalCredentials


@dataclass(frozen=True)
class UploadLimits:
    """How big an upload may grow and how long an idle one is kept."""

    max_size: int = 64 * 1024**3
    """The most bytes one upload may hold."""
    idle: float = 24 * 3600.0
    """Seconds without an append after which an upload is abandoned (Q21)."""
    sweep_interval: float = 600.0
    """Seconds between sweeps of abandoned uploads."""


@dataclass(frozen=True)
class ApiConfig:
    """Settings of the api service."""

    mesh: MeshConfig
    """Where etcd, the state folder and the other services are."""
    listen: str
    """The gRPC listen address."""
    limits: Limits
    """Bounds on what one instance may ask for."""
    token_ttl_seconds: int
    """How long a user token lives."""
    deleted_retention: float
    """Seconds a deleted instance stays readable by UUID before it is purged."""
    purge_interval: float
    """Seconds between purge sweeps."""
    uploads: UploadLimits
    """Bounds on uploads."""
    artifact_sweep: SweepSettings
    """When deleted artifacts and blobs are forgotten."""
    snapshots_default_to_thin: bool = False
    """Whether a snapshot request that does not say `thin` copies only each
    disk's own layer (Shaken Fist's SNAPSHOTS_DEFAULT_TO_THIN)."""
    console_ticket_ttl: int = DEFAULT_TTL
    """Seconds a browser console ticket lives at most, and by default: the
    session it opens ends then."""
    agent_operation_purge: PurgeSettings = field(default_factory=PurgeSettings)
    """When records of deleted agent operations, and of deleted instances'
    operations, are forgotten."""


async def serve_api(config: ApiConfig) -> None:
    """Run the api until SIGTERM."""
    transport = config.mesh.transport
    store = Store(config.mesh.etcd, transport=transport)
    namespaces = NamespaceStore(store)
    await ensure_system_namespace(namespaces, config.mesh.state_dir)
    revocation = Revocation(namespaces)
    revocation.start()
    authority = service_authority(
        config.mesh.state_dir,
        transport,
        user_secret=await user_token_secret(store, config.mesh.state_dir / "jwt.secret"),
        ttl_seconds=config.token_ttl_seconds,
    )
    emitter = service_emitter(config.mesh, "api", authority)
    await emitter.start()
    credentials = InternalCredentials(authority, "api")
    events = Events(emitter, config.mesh.eventlog, credentials, transport=transport)
    outbox = Outbox(store, emitter)
    instance_store, keys = InstanceStore(store), IdempotencyKeys(store)
    scheduler = Scheduler(config.mesh.scheduler, credentials, store, transport=transport)
    node_agents = NodeAgents(store, credentials, transport=transport)
    networks = NetworkStore(store, floating_pool(config.mesh.floating_netblock))
    artifacts = ArtifactStore(store)
    artifact_lookup = ArtifactLookup(artifacts, namespaces, instance_store)
    artifact_deletion = ArtifactDeletion(artifacts, events)
    finder = Finder(artifacts, artifact_lookup)
    upload_store = UploadStore(store)
    uploads = Uploads(
        upload_store, artifacts, node_agents, events, max_size=config.uploads.max_size
    )
    transfers = TransferServicer(
        uploads,
        Conversion(
            upload_store,
            uploads,
            artifacts,
            namespaces,
            artifact_lookup,
            finder,
            node_agents,
            events,
        ),
        BlobData(artifacts, artifact_lookup, node_agents),
    )
    finisher = Finisher(instance_store, networks, events, artifacts, outbox)
    cache = InstanceCache(store)
    creation = Creation(
        instance_store,
        namespaces,
        outbox,
        keys,
        config.limits,
        scheduler,
        networks,
        Bases(artifacts, artifact_lookup, finder),
    )
    snapshots = Snapshots(
        InstanceLookup(instance_store, cache),
        artifacts,
        artifact_lookup,
        finder,
        events,
        node_agents,
        default_thin=config.snapshots_default_to_thin,
    )
    hotplug = Hotplug(
        InstanceLookup(instance_store, cache),
        instance_store,
        networks,
        store,
        outbox,
        events,
        node_agents,
    )
    node_states = NodeStates(store)
    browser_console = BrowserConsole(
        lookup=InstanceLookup(instance_store, cache),
        instances=instance_store,
        store=store,
        events=events,
        node_agents=node_agents,
        check_caller=revocation.check,
        secret=await console_ticket_secret(store),
        ttl=config.console_ticket_ttl,
    )
    instances = InstanceServicer(
        instance_store,
        namespaces,
        events,
        outbox,
        node_agents,
        creation,
        finisher,
        cache,
        snapshots,
        hotplug,
        node_states.state_of,
        browser_console=browser_console,
        agent_operations=AgentOperations(
            InstanceLookup(instance_store, cache), store, events, node_agents, artifact_lookup
        ),
    )
    node_store = NodeStore(store)
    retirement = Retirement(node_store, instance_store, finisher, artifacts)
    caching = asyncio.create_task(cache.run())
    following_nodes = asyncio.create_task(node_states.run())
    retiring = asyncio.create_task(retirement.sweep_forever(config.purge_interval))
    backfilling = asyncio.create_task(backfill_nic_keys(store, instance_store))
    finishing = asyncio.create_task(finisher.run())
    outbox_sweeping = asyncio.create_task(outbox.run())
    hotplug_sweeping = asyncio.create_task(hotplug.run())
    agent_operation_purging = asyncio.create_task(
        AgentOperationPurge(store, instance_store, config.agent_operation_purge).run()
    )
    purging = asyncio.create_task(
        purge_forever(
            instance_store,
            keys,
            networks,
            finisher,
            retention=config.deleted_retention,
            interval=config.purge_interval,
        )
    )
    artifact_sweeping = asyncio.create_task(
        ArtifactSweeper(
            artifacts,
            namespaces,
            instance_store,
            artifact_deletion,
            events,
            config.artifact_sweep,
        ).run()
    )
    sweeping = asyncio.create_task(
        sweep_forever(
            upload_store,
            node_agents,
            events,
            idle=config.uploads.idle,
            interval=config.uploads.sweep_interval,
        )
    )

    async def close() -> None:
        await revocation.close()
        retiring.cancel()
        following_nodes.cancel()
        sweeping.cancel()
        artifact_sweeping.cancel()
        purging.cancel()
        backfilling.cancel()
        finishing.cancel()
        caching.cancel()
        outbox_sweeping.cancel()
        hotplug_sweeping.cancel()
        agent_operation_purging.cancel()
        await events.close()
        await scheduler.close()
        await node_agents.close()
        await emitter.close()
        await store.close()

    running = await start_server(
        address=config.listen,
        servicers=[
            Servicer(
                "sfmesh.v1.InstanceService",
                instances,
                instance_service_pb2_grpc.add_InstanceServiceServicer_to_server,
            ),
            Servicer(
                "sfmesh.v1.NodeService",
                NodeServicer(node_store, events, retirement),
                node_service_pb2_grpc.add_NodeServiceServicer_to_server,
            ),
            Servicer(
                "sfmesh.v1.NetworkService",
                NetworkServicer(networks, namespaces, instance_store, events, node_agents),
                network_service_pb2_grpc.add_NetworkServiceServicer_to_server,
            ),
            Servicer(
                "sfmesh.v1.ArtifactService",
                ArtifactServicer(
                    artifacts,
                    namespaces,
                    artifact_lookup,
                    Caching(artifacts, namespaces, artifact_lookup, finder, events, node_agents),
                    Labels(artifacts, namespaces, artifact_lookup, finder, events),
                    artifact_deletion,
                    events,
                ),
                artifact_service_pb2_grpc.add_ArtifactServiceServicer_to_server,
            ),
            Servicer(
                "sfmesh.v1.TransferService",
                transfers,
                transfer_service_pb2_grpc.add_TransferServiceServicer_to_server,
            ),
            Servicer(
                "sfmesh.v1.AuthService",
                AuthServicer(namespaces, authority, artifact_deletion),
                auth_service_pb2_grpc.add_AuthServiceServicer_to_server,
            ),
        ],
        authority=authority,
        # users prove themselves by token; the api serves nothing internal
        transport=transport,
        clients_prove=False,
        check=revocation.check,
    )
    await serve(running, on_stop=close)
