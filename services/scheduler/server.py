"""Builds the scheduler process: etcd, the event emitter, the node registry,
the servicer, and the leadership that lets it serve."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sfmesh.v1 import scheduler_service_pb2_grpc

from services.common import instance_states as states
from services.common.config import MeshConfig
from services.common.instance_follower import InstanceFollower
from services.common.instance_store import InstanceStore
from services.common.main import service_authority, service_emitter
from services.common.server import Servicer, serve, start_server
from services.common.store import Store
from services.scheduler.leadership import Leadership
from services.scheduler.node_records import Timing
from services.scheduler.placement import Policy
from services.scheduler.registry import Registry
from services.scheduler.reservations import ReservationStore
from services.scheduler.servicer import SchedulerServicer


@dataclass(frozen=True)
class SchedulerConfig:
    """Settings of the scheduler service."""

    mesh: MeshConfig
    """Where etcd, the eventlog and the state folder are."""
    listen: str
    """The gRPC listen address."""
    advertise: str
    """host:port clients dial to reach this replica when it leads; unique
    to it (the leader key holds it)."""
    policy: Policy
    """Placement thresholds."""
    timing: Timing
    """Report interval and record write interval."""
    reservation_ttl: float
    """Seconds a reservation lives unless the node reports the instance."""


async def serve_scheduler(config: SchedulerConfig) -> None:
    """Run the scheduler until SIGTERM."""
    authority = service_authority(config.mesh.state_dir, config.mesh.transport)
    store = Store(config.mesh.etcd, transport=config.mesh.transport)
    emitter = service_emitter(config.mesh, "scheduler", authority)
    await emitter.start()
    registry = Registry(reservation_ttl=config.reservation_ttl)

    def changed(uuid: str) -> None:  # deleted: its reservation counts for nothing now
        if placed.get(uuid) is None:
            registry.forget(uuid)

    # Every placed, live instance: what affinity counts.
    placed = InstanceFollower(
        InstanceStore(store),
        lambda instance: bool(instance.node) and instance.state != states.DELETED,
        changed,
    )
    following = asyncio.create_task(placed.run(), name="placed-instances")
    leadership = Leadership(store, config.advertise)
    servicer = SchedulerServicer(
        store=store,
        registry=registry,
        emitter=emitter,
        policy=config.policy,
        timing=config.timing,
        placed=placed,
        leadership=leadership,
        reservations=ReservationStore(store, ttl=config.reservation_ttl),
    )

    async def close() -> None:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await servicer.close()
        await emitter.close()
        await store.close()

    running = await start_server(
        address=config.listen,
        servicers=[
            Servicer(
                "sfmesh.v1.SchedulerService",
                servicer,
                scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server,
            )
        ],
        authority=authority,
        transport=config.mesh.transport,
    )
    # Campaign once listening: a claim naming this address is then a dead
    # incarnation's, and a lone scheduler leads within milliseconds.
    await leadership.start(servicer)
    # Hand the lead over before the streams' grace, not after it.
    await serve(running, on_stopping=leadership.close, on_stop=close)
