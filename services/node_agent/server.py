"""Builds the node agent process: the instances placed here (an etcd watch),
the reconciler that turns them into libvirt domains, NodeAgentService for
power, consoles, uploads and blob reads, and the report stream to the
scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sfmesh.v1 import node_agent_service_pb2_grpc

from services.common import errors
from services.common.config import MeshConfig
from services.common.instance_store import InstanceStore
from services.common.leaders import SCHEDULER, LeaderLookup
from services.common.main import service_authority, service_emitter
from services.common.server import Servicer, serve, start_server
from services.common.store import Store
from services.common.tokens import InternalCredentials
from services.node_agent import facts, naming, reporter
from services.node_agent.blob_care import BlobCare, CareSettings
from services.node_agent.blob_locations import BlobLocations
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.builder import Builder
from services.node_agent.cache_requests import CacheRequests
from services.node_agent.commands import DataPlaneError
from services.node_agent.dataplane import DataPlane, Underlay
from services.node_agent.disk_images import DiskImages
from services.node_agent.egress import EgressAddresses
from services.node_agent.fetch_policy import IPNetwork
from services.node_agent.graphics_ports import GraphicsPorts, GraphicsSettings
from services.node_agent.hypervisor import Hypervisor, HypervisorError
from services.node_agent.images import DEFAULT_DEADLINE, DEFAULT_MAX_BYTES, ImageCache
from services.node_agent.mesh_endpoints import MeshEndpoints, configured_endpoints
from services.node_agent.nat import Egress
from services.node_agent.networking import InstanceNetworking, NetworkGone
from services.node_agent.peer_agents import PeerAgents
from services.node_agent.peer_copy import PeerCopier
from services.node_agent.peers import Peers
from services.node_agent.placed import PlacedInstances
from services.node_agent.presence import DEFAULT_TTL, Presence
from services.node_agent.reconciler import Reconciler
from services.node_agent.screenshots import Screenshots
from services.node_agent.servicer import NodeAgentServicer
from services.node_agent.snapshots import Snapshots
from services.node_agent.source_checks import DEFAULT_CHECK_INTERVAL
from services.node_agent.transfers import TransferServicer
from services.node_agent.uploads import UploadFiles

log = logging.getLogger("sfmesh.node_agent")

AUDIT_INTERVAL = 10.0
"""Seconds between two checks of every hosted instance against libvirt: a
lifecycle event can be lost (libvirtd drops those of domains it is still
reattaching to after a restart), so the state is also read, level-triggered."""


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


async def serve_node_agent(config: NodeAgentConfig) -> None:
    """Run the node agent until SIGTERM."""
    authority = service_authority(config.mesh.state_dir, config.mesh.transport)
    credentials = InternalCredentials(authority, "node_agent").metadata
    instances_dir = facts.instances_dir(config.mesh.state_dir)
    await asyncio.to_thread(_traversable, instances_dir)
    virt_type = facts.read_virt_type(config.virt_type)
    store = Store(config.mesh.etcd, transport=config.mesh.transport)
    records = InstanceStore(store)
    emitter = service_emitter(config.mesh, f"node_agent:{config.node_name}", authority)
    await emitter.start()

    reconciler: Reconciler
    reports: reporter.Reporter

    def changed(uuid: str) -> None:
        reconciler.changed(uuid)
        reports.nudge()

    placed = PlacedInstances(records, config.node_name, changed)

    def resync() -> None:  # events may have been missed while libvirtd was away
        for instance in placed.hosted():
            reconciler.changed(instance.uuid)

    async def audit() -> None:
        while True:
            await asyncio.sleep(AUDIT_INTERVAL)
            resync()

    hypervisor = Hypervisor(
        config.libvirt_uri,
        config.node_name,
        lambda uuid, power: reconciler.observed(uuid, power),
        resync,
    )
    dataplane = DataPlane(
        config.node_name, config.mesh.state_dir / "networks", config.underlay, config.egress
    )
    egress = EgressAddresses(store, config.node_name, config.egress.pool) if config.egress else None
    networking = InstanceNetworking(store, dataplane, placed.hosted, emitter, egress)
    builder: Builder
    blobs = LocalBlobStore(config.mesh.state_dir / "blobs")
    for partial in await asyncio.to_thread(blobs.sweep_partials):
        log.info("removed a stale partial blob", extra={"fields": {"path": str(partial)}})
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
        progress=lambda url, done, total: builder.fetch_progress(url, done, total),
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
    builder = Builder(
        instances_dir=instances_dir,
        images=disk_images,
        hypervisor=hypervisor,
        virt_type=virt_type,
        events=emitter,
    )
    reconciler = Reconciler(
        records=records,
        blobs=blob_records,
        lookup=placed.get,
        builder=builder,
        networking=networking,
        hypervisor=hypervisor,
        emitter=emitter,
        graphics=GraphicsPorts(placed.hosted, config.graphics, advertise=config.advertise),
    )
    snapshots = Snapshots(
        node=config.node_name,
        hypervisor=hypervisor,
        blobs=blobs,
        records=blob_records,
        store=store,
        events=emitter,
        work_dir=config.mesh.state_dir / "snapshots",
    )
    for leftover in await asyncio.to_thread(snapshots.sweep):
        log.info("removed a leftover snapshot copy", extra={"fields": {"path": str(leftover)}})
    host = facts.HostFacts(
        node=config.node_name,
        address=config.advertise,
        kvm=virt_type == "kvm",
        libvirt_version=await hypervisor.version(),
        underlay_address=config.underlay.address if config.underlay else "",
    )
    log.info(
        "host facts",
        extra={
            "fields": {
                "node": host.node,
                "address": host.address,
                "kvm": host.kvm,
                "underlay": host.underlay_address or "none: networks stay on this node",
                "egress": config.egress.bridge if config.egress else "none: no NAT here",
            }
        },
    )
    following = asyncio.create_task(placed.run(), name="placed-instances")
    sweeping = asyncio.create_task(
        _sweep_leftovers(placed, hypervisor, instances_dir, reconciler.changed, networking),
        name="sweep-leftovers",
    )
    auditing = asyncio.create_task(audit(), name="power-audit")
    caching = asyncio.create_task(
        CacheRequests(blob_records, config.node_name, disk_images.answer_cache_request).run(),
        name="cache-requests",
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
    caring = asyncio.create_task(blob_care.run(), name="blob-care")
    background = [following, sweeping, auditing, caching, caring]
    if config.underlay is not None:
        peers = Peers(store, config.node_name, dataplane.set_peers)
        background.append(asyncio.create_task(peers.run(), name="vxlan-peers"))
    presence = Presence(store, config.node_name, config.advertise, ttl=config.presence_ttl)
    presenting = asyncio.create_task(presence.run(), name="presence")
    reports = reporter.Reporter(
        leaders=LeaderLookup(store, SCHEDULER, fallback=config.mesh.scheduler),
        facts=host,
        sample=lambda: facts.read_capacity(config.mesh.state_dir, placed.hosted()),
        credentials=credentials,
        transport=config.mesh.transport,
    )

    async def report_once_present() -> None:  # the scheduler refuses it before
        await presence.held.wait()
        await reports.run()

    reporting = asyncio.create_task(report_once_present(), name="node-reports")

    async def close() -> None:
        await reporter.stop(reporting)
        # the presence lease runs out: missing unless an agent returns first
        for task in [presenting, *background]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await reconciler.close()
        await disk_images.close()
        await snapshots.close()
        await peer_agents.close()
        await hypervisor.close()
        await emitter.close()
        await store.close()

    running = await start_server(
        address=config.listen,
        servicers=[
            Servicer(
                "sfmesh.v1.NodeAgentService",
                NodeAgentServicer(
                    lookup=placed.get,
                    records=records,
                    hypervisor=hypervisor,
                    reconciler=reconciler,
                    console_log=builder.console_log,
                    dataplane=dataplane,
                    transfers=TransferServicer(uploads=uploads, blobs=blobs),
                    snapshots=snapshots,
                    screenshots=Screenshots(
                        node=config.node_name,
                        hypervisor=hypervisor,
                        blobs=blobs,
                        store=store,
                        events=emitter,
                    ),
                ),
                node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server,
            )
        ],
        authority=authority,
        transport=config.mesh.transport,
    )
    await serve(running, on_stop=close)


async def _sweep_leftovers(
    placed: PlacedInstances,
    hypervisor: Hypervisor,
    instances_dir: Path,
    changed: Callable[[str], None],
    networking: InstanceNetworking,
) -> None:
    """After a restart: domains and folders of instances etcd no longer
    places here (deleted and purged while this agent was down, say) are
    converged too, which tears them down; so are networks none of them uses."""
    await placed.synced.wait()
    try:
        found = set(await hypervisor.domains())
    except HypervisorError as exc:
        log.warning("cannot list domains for leftovers: %s", exc)
        found = set()
    folders = await asyncio.to_thread(_folders, instances_dir)
    found |= {entry.name for entry in folders if naming.is_uuid(entry.name)}
    for uuid in sorted(found):
        if placed.get(uuid) is None:
            log.info("removing leftovers", extra={"fields": {"instance": uuid}})
            changed(uuid)
    try:
        await networking.sweep()
    except (DataPlaneError, NetworkGone, errors.SfmeshError) as exc:
        log.warning("cannot sweep leftover networks: %s", exc)


def _folders(root: Path) -> list[Path]:
    return [entry for entry in root.iterdir() if entry.is_dir()]


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
