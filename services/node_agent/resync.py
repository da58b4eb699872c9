"""Where the reconciler is poked although no record changed: every hosted
instance after libvirtd came back and every AUDIT_INTERVAL (a lifecycle
event can be lost), and, once after a start, the domains, folders and
networks left of instances etcd no longer places here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from services.common import errors
from services.node_agent import naming
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


async def audit_power(placed: PlacedInstances, changed: Callable[[str], None]) -> None:
    """Every AUDIT_INTERVAL, converge every hosted instance; until cancelled."""
    while True:
        await asyncio.sleep(AUDIT_INTERVAL)
        converge_hosted(placed, changed)


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
