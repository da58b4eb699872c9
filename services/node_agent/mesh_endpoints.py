"""The mesh's own endpoints as an image fetch must see them: the addresses
this node agent is configured with, and those node agents publish in their
node records (read again for each fetch, so a node that joined since is
covered), each resolved to its addresses and marked when on this host."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from ipaddress import ip_address

from sfmesh.v1 import records_pb2

from services.common.config import MeshConfig, split_address
from services.common.store import Store, kind_prefix
from services.node_agent.fetch_policy import Endpoint, IPAddress, unwrap

log = logging.getLogger("sfmesh.node_agent.mesh_endpoints")


def configured_endpoints(mesh: MeshConfig, listen: str, advertise: str) -> list[tuple[str, str]]:
    """(what it is, host:port) of every endpoint a node agent is told of."""
    return [
        ("the mesh's etcd", mesh.etcd),
        ("the mesh's api", mesh.api),
        ("the mesh's scheduler", mesh.scheduler),
        ("the mesh's eventlog", mesh.eventlog),
        ("the mesh's gateway", mesh.gateway),
        ("this node agent", listen),
        ("this node agent", advertise),
    ]


class MeshEndpoints:
    """The configured endpoints plus every node agent's published address."""

    def __init__(self, store: Store, configured: Sequence[tuple[str, str]]) -> None:
        self._store = store
        self._configured = tuple(configured)

    async def read(self) -> tuple[Endpoint, ...]:
        """Every endpoint, resolved now. Raises errors.Unavailable when etcd
        cannot be read: no fetch goes ahead unchecked."""
        named = list(self._configured)
        async for item in self._store.list_prefix(kind_prefix("node")):
            record = records_pb2.NodeRecord.FromString(item.value)
            if record.facts.address:
                named.append((f"the node agent of node {record.name}", record.facts.address))
        return await asyncio.to_thread(resolve_endpoints, named)


def resolve_endpoints(named: Sequence[tuple[str, str]]) -> tuple[Endpoint, ...]:
    """Resolve (what it is, host:port) pairs (blocking). One that does not
    resolve is left out with a warning: no fetch can reach it by that name."""
    endpoints = []
    for name, address in named:
        try:
            host, port = split_address(address)
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            log.warning("cannot resolve %s at %r: %s", name, address, exc)
            continue
        addresses = frozenset(ip_address(info[4][0]) for info in infos)
        local = any(on_this_host(unwrap(each)) for each in addresses)
        endpoints.append(Endpoint(name, address, port, addresses, local))
    return tuple(endpoints)


def on_this_host(address: IPAddress) -> bool:
    """Whether ``address`` belongs to one of this host's interfaces: the
    kernel lets a socket bind only to those (blocking, but at once)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True
