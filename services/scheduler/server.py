"""Builds the scheduler process: etcd, the event emitter, the node registry
and the servicer."""

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
from services.scheduler.placement import Policy
from services.scheduler.registry import Registry
from services.scheduler.servicer import SchedulerServicer, Timing


@dataclass(frozen=True)
class SchedulerConfig:
    """Settings of the scheduler service."""

    mesh: MeshConfig
    """Where etcd, the eventlog and the state folder are."""
    listen: str
    """The gRPC listen address."""
    policy: Policy
    """Placement thresholds."""
    timing: Timing
    """Report interval, node grace and record write interval."""
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
    servicer = SchedulerServicer(
        store=store,
        registry=registry,
        emitter=emitter,
        policy=config.policy,
        timing=config.timing,
        placed=placed,
    )
    await servicer.start()

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
    await serve(running, on_stop=close)
