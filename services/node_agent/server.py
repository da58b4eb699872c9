"""Builds the node agent process: the published contract (its RPCs answer
UNIMPLEMENTED until power and consoles arrive) and the report stream to the
scheduler, started before serving and stopped after."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

from sfmesh.v1 import node_agent_service_pb2

from services.common.config import MeshConfig
from services.common.main import service_authority
from services.common.server import serve
from services.common.tokens import InternalCredentials
from services.node_agent import facts, reporter

log = logging.getLogger("sfmesh.node_agent")

PUBLISHED = tuple(s.full_name for s in node_agent_service_pb2.DESCRIPTOR.services_by_name.values())
"""The contract announced through reflection (importing it loads its
descriptors, which reflection serves); its RPCs answer UNIMPLEMENTED."""


@dataclass(frozen=True)
class NodeAgentConfig:
    """Settings of one node agent."""

    mesh: MeshConfig
    """Where the state folder and the scheduler are."""
    listen: str
    """The gRPC listen address."""
    node_name: str
    """The node's name, unique in the mesh."""
    advertise: str
    """The address published to the scheduler, host:port."""
    virt_type: str
    """The virtualisation setting: "auto", "kvm" or "qemu"."""


async def serve_node_agent(config: NodeAgentConfig) -> None:
    """Run the node agent until SIGTERM."""
    authority = service_authority(config.mesh.state_dir)
    facts.instances_dir(config.mesh.state_dir).mkdir(parents=True, exist_ok=True)
    host = facts.HostFacts(
        node=config.node_name,
        address=config.advertise,
        kvm=facts.read_virt_type(config.virt_type) == "kvm",
    )
    log.info(
        "host facts",
        extra={"fields": {"node": host.node, "address": host.address, "kvm": host.kvm}},
    )
    reporting = asyncio.create_task(
        reporter.Reporter(
            scheduler=config.mesh.scheduler,
            facts=host,
            sample=functools.partial(facts.read_capacity, config.mesh.state_dir),
            credentials=InternalCredentials(authority, "node_agent").token,
        ).run(),
        name="node-reports",
    )

    async def close() -> None:
        await reporter.stop(reporting)

    await serve(
        address=config.listen,
        servicers=[],
        published=PUBLISHED,
        authority=authority,
        on_stop=close,
    )
