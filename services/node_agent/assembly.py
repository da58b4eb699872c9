"""The node agent's build step: every part made once, in dependency order,
held in one `NodeAgentParts`; `server.py` runs them.

No part refers to one made after it. Where a part made early must tell one
made later that something happened (a record changed, libvirt saw a power
change, a download moved on), it raises a notice (`notices.py`), and the
later part is connected to that notice right after it is made.

Adding a part: make it here after what it uses (connecting it to the
notices it hears), add it to `NodeAgentParts`, and start and stop it in
`server.py`'s run step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common import side_channels
from services.common.config import MeshConfig
from services.common.events import EventEmitter
from services.common.instance_store import InstanceStore
from services.common.leaders import SCHEDULER, LeaderLookup
from services.common.main import service_authority, service_emitter
from services.common.store import Store
from services.common.tokens import InternalCredentials, TokenAuthority
from services.node_agent import facts
from services.node_agent.agent_monitors import AgentMonitors
from services.node_agent.agent_operations import AgentOperations
from services.node_agent.blob_care import BlobCare, CareSettings
from services.node_agent.blob_locations import BlobLocations
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.builder import Builder
from services.node_agent.cache_requests import CacheRequests
from services.node_agent.console_relay import ConsoleRelay
from services.node_agent.dataplane import DataPlane, Underlay
from services.node_agent.disk_images import DiskImages
from services.node_agent.egress import EgressAddresses
from services.node_agent.fetch_policy import IPNetwork
from services.node_agent.graphics_ports import GraphicsPorts, GraphicsSettings
from services.node_agent.hotplug import Hotplug
from services.node_agent.hypervisor import Hypervisor
from services.node_agent.images import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, ImageCache
from services.node_agent.mesh_endpoints import MeshEndpoints, configured_endpoints
from services.node_agent.nat import Egress
from services.node_agent.networking import InstanceNetworking
from services.node_agent.notices import Notices
from services.node_agent.peer_agents import PeerAgents
from services.node_agent.peer_copy import PeerCopier
from services.node_agent.peers import Peers
from services.node_agent.placed import PlacedInstances
from services.node_agent.presence import DEFAULT_TTL, Presence
from services.node_agent.reconciler import Reconciler
from services.node_agent.reporter import Reporter
from services.node_agent.resources import DEFAULT_INTERVAL as RESOURCES_INTERVAL
from services.node_agent.resources import Resources
from services.node_agent.resync import converge_hosted, once_synced
from services.node_agent.screenshots import Screenshots
from services.node_agent.servicer import NodeAgentServicer
from services.node_agent.snapshots import Snapshots
from services.node_agent.source_checks import DEFAULT_CHECK_INTERVAL
from services.node_agent.transfers import TransferServicer
from services.node_agent.uploads import UploadFiles
from services.node_agent.usage import DEFAULT_INTERVAL as USAGE_INTERVAL
from services.node_agent.usage import UsageSampler


@dataclass(frozen=True)
class NodeAgentConfig:
    """Settings of one node agent."""

    mesh: MeshConfig
    """Where the state folder, etcd and the scheduler are."""
    listen: str
    """The gRPC listen address."""
    node_name: str
    """The node's name, unique in the mesh."""
    advertise: str
    """The address published to the scheduler, host:port."""
    virt_type: str
    """The virtualisation setting: "auto", "kvm" or "qemu"."""
    libvirt_uri: str
    """The libvirt connection."""
    image_shorthands: Mapping[str, str]
    """Shorthand disk bases (`debian:11`) and the URLs they stand for."""
    image_max_bytes: int = DEFAULT_MAX_BYTES
    """The largest image a download may bring."""
    image_deadline: float = DEFAULT_DEADLINE
    """Seconds one image download may take."""
    image_check_interval: float = DEFAULT_CHECK_INTERVAL
    """Seconds after an image URL was last read before an instance create
    has it checked for changes again (in the background)."""
    image_allowed_networks: tuple[IPNetwork, ...] = ()
    """Networks image downloads may reach although loopback, private or
    reserved; the mesh's own endpoints stay refused."""
    underlay: Underlay | None = None
    """This node's VXLAN endpoint; None keeps networks on this node."""
    egress: Egress | None = None
    """How this node's NAT networks reach the outside; None: they do not."""
    blob_care: CareSettings = field(default_factory=CareSettings)
    """Replication, integrity and cleaning of blobs across nodes."""
    presence_ttl: int = DEFAULT_TTL
    """Seconds this node's presence lease outlives the agent (`presence.py`)."""
    graphics: GraphicsSettings = field(default_factory=GraphicsSettings)
    """Where graphical consoles listen, and their ports (`graphics_ports.py`)."""
    usage_interval: float = USAGE_INTERVAL
    """Seconds between two usage samples of the running domains (`usage.py`); 0: none."""
    resources_interval: float = RESOURCES_INTERVAL
    """Seconds between two `resources` events and process metrics (`resources.py`)."""


@dataclass(frozen=True)
class NodeAgentParts:
    """Every part of one node agent, made and connected, none running (but
    the event emitter and the libvirt connection the host facts came from)."""

    config: NodeAgentConfig
    authority: TokenAuthority
    """The internal identity the gRPC server checks callers against."""
    instances_dir: Path
    """`<state>/instances`: a folder per instance, reachable by qemu."""
    store: Store
    emitter: EventEmitter
    notices: Notices
    placed: PlacedInstances
    """The instance records placed here, followed from etcd."""
    hypervisor: Hypervisor
    dataplane: DataPlane
    networking: InstanceNetworking
    peers: Peers | None
    """The other nodes' underlay addresses, followed; None without an underlay."""
    blobs: LocalBlobStore
    images: ImageCache
    peer_agents: PeerAgents
    disk_images: DiskImages
    cache_requests: CacheRequests
    snapshots: Snapshots
    blob_care: BlobCare
    builder: Builder
    reconciler: Reconciler
    agent_monitors: AgentMonitors
    agent_operations: AgentOperations
    """A monitor of each running instance's in-guest agent; agent_state."""
    usage: UsageSampler | None
    """The running domains' `usage` events; None when `usage_interval` is 0."""
    host: facts.HostFacts
    presence: Presence
    reporter: Reporter
    resources: Resources
    """The node's resources events and process metrics, every interval."""
    servicer: NodeAgentServicer
    """NodeAgentService, for the gRPC server."""


async def build_node_agent(config: NodeAgentConfig) -> NodeAgentParts:
    """Make every part of the node agent, in dependency order, and connect
    them. Starts the event emitter first (a part may emit once libvirt is
    reached) and reads libvirtd's version for the host facts; starts no
    other task. Exits when qemu cannot reach the instances folder."""
    authority = service_authority(config.mesh.state_dir, config.mesh.transport)
    credentials = InternalCredentials(authority, "node_agent").metadata
    instances_dir = facts.instances_dir(config.mesh.state_dir)
    await asyncio.to_thread(_traversable, instances_dir)
    virt_type = facts.read_virt_type(config.virt_type)
    store = Store(config.mesh.etcd, transport=config.mesh.transport)
    records = InstanceStore(store)
    emitter = service_emitter(config.mesh, f"node_agent:{config.node_name}", authority)
    await emitter.start()
    notices = Notices()

    placed = PlacedInstances(records, config.node_name, notices.instance_changed)
    hypervisor = Hypervisor(
        config.libvirt_uri,
        config.node_name,
        notices.power_observed,
        notices.libvirt_reconnected,
    )

    dataplane = DataPlane(
        config.node_name, config.mesh.state_dir / "networks", config.underlay, config.egress
    )
    egress = EgressAddresses(store, config.node_name, config.egress.pool) if config.egress else None
    networking = InstanceNetworking(store, dataplane, placed.hosted, emitter, egress)
    peers = (
        Peers(store, config.node_name, dataplane.set_peers) if config.underlay is not None else None
    )

    blobs = LocalBlobStore(config.mesh.state_dir / "blobs")
    uploads = UploadFiles(config.mesh.state_dir / "uploads", blobs)
    images = ImageCache(
        config.mesh.state_dir / "images",
        config.image_shorthands,
        blobs=blobs,
        endpoints=MeshEndpoints(
            store, configured_endpoints(config.mesh, config.listen, config.advertise)
        ).read,
        allowed=config.image_allowed_networks,
        max_bytes=config.image_max_bytes,
        deadline=config.image_deadline,
        progress=notices.image_progress,
    )
    blob_records = BlobRecords(store)
    peer_agents = PeerAgents(store, credentials, transport=config.mesh.transport)
    blob_locations = BlobLocations(store, config.node_name)
    copier = PeerCopier(
        node=config.node_name,
        blobs=blobs,
        records=blob_records,
        locations=blob_locations,
        peers=peer_agents,
        events=emitter,
    )
    disk_images = DiskImages(
        node=config.node_name,
        images=images,
        blobs=blobs,
        records=blob_records,
        events=emitter,
        copier=copier,
        check_interval=config.image_check_interval,
    )
    cache_requests = CacheRequests(blob_records, config.node_name, disk_images.answer_cache_request)
    snapshots = Snapshots(
        node=config.node_name,
        hypervisor=hypervisor,
        blobs=blobs,
        records=blob_records,
        store=store,
        events=emitter,
        work_dir=config.mesh.state_dir / "snapshots",
    )
    blob_care = BlobCare(
        node=config.node_name,
        store=store,
        blobs=blobs,
        copier=copier,
        locations=blob_locations,
        peers=peer_agents,
        events=emitter,
        settings=config.blob_care,
        kept=images.indexed_blobs,
        making=snapshots.making,
    )

    builder = Builder(
        instances_dir=instances_dir,
        images=disk_images,
        hypervisor=hypervisor,
        virt_type=virt_type,
        events=emitter,
    )
    notices.image_progress.connect(builder.fetch_progress)
    hotplug = Hotplug(
        node=config.node_name,
        records=records,
        networking=networking,
        hypervisor=hypervisor,
        emitter=emitter,
    )
    reconciler = Reconciler(
        records=records,
        blobs=blob_records,
        lookup=placed.get,
        builder=builder,
        networking=networking,
        hypervisor=hypervisor,
        hotplug=hotplug,
        emitter=emitter,
        graphics=GraphicsPorts(placed.hosted, config.graphics, advertise=config.advertise),
    )
    notices.instance_changed.connect(reconciler.changed)
    notices.power_observed.connect(once_synced(placed.synced, reconciler.observed))
    notices.libvirt_reconnected.connect(lambda: converge_hosted(placed, reconciler.changed))
    agent_monitors = AgentMonitors(
        records=records,
        lookup=placed.get,
        placed=placed.instances,
        socket=lambda uuid: builder.side_channel_socket(uuid, side_channels.AGENT),
        events=emitter,
    )
    notices.instance_changed.connect(agent_monitors.changed)
    agent_operations = AgentOperations(
        node=config.node_name,
        store=store,
        monitor=agent_monitors.monitor,
        blobs=blobs,
        events=emitter,
        ensure_blob=copier.ensure,
    )
    usage = (
        UsageSampler(
            hypervisor=hypervisor,
            lookup=placed.get,
            events=emitter,
            interval=config.usage_interval,
        )
        if config.usage_interval > 0
        else None
    )

    host = facts.HostFacts(
        node=config.node_name,
        address=config.advertise,
        kvm=virt_type == "kvm",
        libvirt_version=await hypervisor.version(),
        underlay_address=config.underlay.address if config.underlay else "",
    )
    presence = Presence(store, config.node_name, config.advertise, ttl=config.presence_ttl)

    def sample() -> facts.Capacity:
        return facts.read_capacity(config.mesh.state_dir, placed.hosted())

    reporter = Reporter(
        leaders=LeaderLookup(store, SCHEDULER, fallback=config.mesh.scheduler),
        facts=host,
        sample=sample,
        credentials=credentials,
        transport=config.mesh.transport,
    )
    notices.instance_changed.connect(lambda _uuid: reporter.nudge())
    resources = Resources(
        node=config.node_name,
        state_dir=config.mesh.state_dir,
        sample=sample,
        store=store,
        emitter=emitter,
        interval=config.resources_interval,
    )

    servicer = NodeAgentServicer(
        lookup=placed.get,
        records=records,
        hypervisor=hypervisor,
        reconciler=reconciler,
        console_log=builder.console_log,
        dataplane=dataplane,
        transfers=TransferServicer(uploads=uploads, blobs=blobs),
        snapshots=snapshots,
        screenshots=Screenshots(
            node=config.node_name, hypervisor=hypervisor, blobs=blobs, store=store, events=emitter
        ),
        hotplug=hotplug,
        consoles=ConsoleRelay(lookup=placed.get, power=hypervisor.state, settings=config.graphics),
        agent_operations=agent_operations,
    )
    return NodeAgentParts(
        config=config,
        authority=authority,
        instances_dir=instances_dir,
        store=store,
        emitter=emitter,
        notices=notices,
        placed=placed,
        hypervisor=hypervisor,
        dataplane=dataplane,
        networking=networking,
        peers=peers,
        blobs=blobs,
        images=images,
        peer_agents=peer_agents,
        disk_images=disk_images,
        cache_requests=cache_requests,
        snapshots=snapshots,
        blob_care=blob_care,
        builder=builder,
        reconciler=reconciler,
        agent_monitors=agent_monitors,
        agent_operations=agent_operations,
        usage=usage,
        host=host,
        presence=presence,
        reporter=reporter,
        resources=resources,
        servicer=servicer,
    )


def _traversable(instances_dir: Path) -> None:
    """qemu runs as another user: it must reach the instances folder."""
    instances_dir.mkdir(parents=True, exist_ok=True)
    instances_dir.chmod(0o755)
    for folder in (instances_dir, *instances_dir.parents):
        if not folder.stat().st_mode & 0o001:
            raise SystemExit(
                f"qemu cannot reach {instances_dir}: {folder} is not traversable by "
                "other users; choose a --state-dir under a traversable folder "
                "(e.g. /var/lib/sfmesh) or chmod o+x it"
            )
