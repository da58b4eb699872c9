"""Where the reconciler is poked although no record changed: every hosted
instance after libvirtd came back and every AUDIT_INTERVAL (a lifecycle
event can be lost), and, once after a start, the domains, folders and
networks left of instances etcd no longer places here; and where it is not:
lifecycle events before the placed instances are known."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from sfmesh.v1 import instance_pb2

from services.common import errors
from services.node_agent import metrics, naming
from services.node_agent.commands import DataPlaneError
from services.node_agent.hypervisor import Hypervisor, HypervisorError
from services.node_agent.networking import InstanceNetworking, NetworkGone
from services.node_agent.placed import PlacedInstances

log = logging.getLogger("sfmesh.node_agent")

AUDIT_INTERVAL = 10.0
"""Seconds between two checks of every hosted instance against libvirt: a
lifecycle event can be lost (libvirtd drops those of domains it is still
reattaching to after a restart), so the state is also read, level-triggered."""


def converge_hosted(placed: PlacedInstances, changed: Callable[[str], None]) -> None:
    """Have every instance this node hosts converged again: events may have
    been missed (while libvirtd was away, say)."""
    for instance in placed.hosted():
        changed(instance.uuid)


def once_synced(
    synced: asyncio.Event, observed: Callable[[str, instance_pb2.PowerState], None]
) -> Callable[[str, instance_pb2.PowerState], None]:
    """`observed`, deaf until `synced` (the placed instances' first snapshot
    is in). Before, every instance of ours looks placed elsewhere, and
    converging one on a lifecycle event would tear its domain and disks
    down; the first snapshot converges every one anyway, reading libvirt's
    state then."""

    def heard(uuid: str, power: instance_pb2.PowerState) -> None:
        if synced.is_set():
            observed(uuid, power)

    return heard


async def audit_power(placed: PlacedInstances, changed: Callable[[str], None]) -> None:
    """Every AUDIT_INTERVAL, converge every hosted instance and count the
    domains by power state (`metrics.py`); until cancelled."""
    while True:
        await asyncio.sleep(AUDIT_INTERVAL)
        converge_hosted(placed, changed)
        metrics.count_domains(placed.hosted())


async def sweep_leftovers(
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
