"""The node agent process: its parts built (`assembly.py`), then run: the
instances placed here (an etcd watch), the reconciler that turns them into
libvirt domains, NodeAgentService for power, consoles, uploads and blob
reads, and the report stream to the scheduler.

The run step tidies what a previous process left, starts every loop, serves
until SIGTERM, then stops: the report stream first, then the loops in the reverse of their
start (presence first: its lease is left to run out), then each part that
holds work or connections, the emitter and etcd last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from sfmesh.v1 import node_agent_service_pb2_grpc

from services.common.server import Servicer, serve, start_server
from services.node_agent import reporter
from services.node_agent.assembly import NodeAgentConfig, NodeAgentParts, build_node_agent
from services.node_agent.resync import audit_power, sweep_leftovers

log = logging.getLogger("sfmesh.node_agent")


async def serve_node_agent(config: NodeAgentConfig) -> None:
    """Run the node agent until SIGTERM."""
    await run_node_agent(await build_node_agent(config))


async def run_node_agent(parts: NodeAgentParts) -> None:
    """Run built parts until SIGTERM, then stop them in order."""
    await _tidy(parts)
    _log_host(parts)
    loops = [asyncio.create_task(work, name=name) for name, work in _loops(parts)]
    reporting = asyncio.create_task(_report_once_present(parts), name="node-reports")

    async def stop() -> None:
        await reporter.stop(reporting)
        # presence first: its lease runs out, missing unless an agent returns first
        for task in reversed(loops):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await _close(parts)

    running = await start_server(
        address=parts.config.listen,
        servicers=[
            Servicer(
                "sfmesh.v1.NodeAgentService",
                parts.servicer,
                node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server,
            )
        ],
        authority=parts.authority,
        transport=parts.config.mesh.transport,
    )
    await serve(running, on_stop=stop)


async def _tidy(parts: NodeAgentParts) -> None:
    """Remove what a stopped agent left half made: stale partial blobs and
    snapshot copies. Before any fetch or copy starts."""
    for partial in await asyncio.to_thread(parts.blobs.sweep_partials):
        log.info("removed a stale partial blob", extra={"fields": {"path": str(partial)}})
    for leftover in await asyncio.to_thread(parts.snapshots.sweep):
        log.info("removed a leftover snapshot copy", extra={"fields": {"path": str(leftover)}})


def _log_host(parts: NodeAgentParts) -> None:
    config, host = parts.config, parts.host
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


def _loops(parts: NodeAgentParts) -> list[tuple[str, Coroutine[Any, Any, None]]]:
    """The parts' long-running work, named, in the order it starts (and the
    reverse of the order it is cancelled in); each runs until cancelled."""
    changed = parts.reconciler.changed
    loops = [
        ("placed-instances", parts.placed.run()),
        (
            "sweep-leftovers",
            sweep_leftovers(
                parts.placed, parts.hypervisor, parts.instances_dir, changed, parts.networking
            ),
        ),
        ("power-audit", audit_power(parts.placed, changed)),
        ("agent-monitors", parts.agent_monitors.run()),
        ("agent-operations-resume", _resume_agent_operations(parts)),
        ("cache-requests", parts.cache_requests.run()),
        ("blob-care", parts.blob_care.run()),
        ("resources", parts.resources.run()),
    ]
    if parts.peers is not None:
        loops.append(("vxlan-peers", parts.peers.run()))
    if parts.usage is not None:
        loops.append(("usage-samples", parts.usage.run()))
    loops.append(("presence", parts.presence.run()))
    return loops


async def _report_once_present(parts: NodeAgentParts) -> None:
    """The report stream, once the presence key is written: the scheduler
    refuses a node without one."""
    await parts.presence.held.wait()
    await parts.reporter.run()


async def _resume_agent_operations(parts: NodeAgentParts) -> None:
    """Pick up the agent operations a previous run left (once; etcd away:
    they wait for the next start)."""
    try:
        await parts.agent_operations.resume()
    except Exception:
        log.exception("resuming agent operations failed")


async def _close(parts: NodeAgentParts) -> None:
    """Let go of what the parts hold, users before what they use."""
    await parts.agent_operations.close()
    await parts.agent_monitors.close()
    await parts.reconciler.close()
    await parts.disk_images.close()
    await parts.snapshots.close()
    await parts.peer_agents.close()
    await parts.hypervisor.close()
    await parts.emitter.close()
    await parts.store.close()
