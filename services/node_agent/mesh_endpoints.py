"""The mesh's own endpoints as an image fetch must see them: the addresses
this node agent is configured with, those node agents publish in their
node records, and the client and peer URLs of every etcd member (all read
again for each fetch, so a node or member that joined since is covered),
each resolved to its addresses and marked when on this host."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import Sequence
from ipaddress import ip_address

from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.config import MeshConfig, split_address
from services.common.replicas import parse_replicas
from services.common.store import Member, Store, kind_prefix
from services.node_agent.fetch_policy import Endpoint, IPAddress, unwrap


def configured_endpoints(mesh: MeshConfig, listen: str, advertise: str) -> list[tuple[str, str]]:
    """(what it is, host:port) of every endpoint a node agent is told of:
    each api replica of a comma-separated `--api` and each eventlog replica
    among them. Pure."""
    return [
        *(("the mesh's etcd", endpoint) for endpoint in mesh.etcd),
        *(("the mesh's api", replica.strip()) for replica in mesh.api.split(",")),
        ("the mesh's scheduler", mesh.scheduler),
        *(("the mesh's eventlog", one) for one in parse_replicas(mesh.eventlog, role="eventlog")),
        ("the mesh's gateway", mesh.gateway),
        ("this node agent", listen),
        ("this node agent", advertise),
    ]


def member_endpoints(members: Sequence[Member]) -> list[tuple[str, str]]:
    """(what it is, host:port) of the peer and client URLs of etcd's
    members; unix socket URLs are left out, as no fetch reaches them. Pure."""
    named = []
    for member in members:
        for kind, urls in (("peer", member.peer_urls), ("client", member.client_urls)):
            for url in urls:
                parts = urllib.parse.urlsplit(url)
                if parts.scheme.startswith("unix") or not parts.hostname:
                    continue
                host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
                port = parts.port or (443 if parts.scheme == "https" else 80)
                named.append(
                    (f"the mesh's etcd member {member.name} ({kind} URL)", f"{host}:{port}")
                )
    return named


class MeshEndpoints:
    """The configured endpoints, every node agent's published address and
    every etcd member's URLs."""

    def __init__(self, store: Store, configured: Sequence[tuple[str, str]]) -> None:
        self._store = store
        self._configured = tuple(configured)

    async def read(self) -> tuple[Endpoint, ...]:
        """Every endpoint, resolved now. Raises errors.Unavailable when etcd
        cannot be read or an endpoint does not resolve: no fetch goes ahead
        unchecked."""
        named = list(self._configured)
        async for item in self._store.list_prefix(kind_prefix("node")):
            record = records_pb2.NodeRecord.FromString(item.value)
            if record.facts.address:
                named.append((f"the node agent of node {record.name}", record.facts.address))
        named += member_endpoints(await self._store.members())
        return await asyncio.to_thread(resolve_endpoints, named)


def resolve_endpoints(named: Sequence[tuple[str, str]]) -> tuple[Endpoint, ...]:
    """Resolve (what it is, host:port) pairs (blocking). Raises
    errors.Unavailable when one does not resolve: its addresses are unknown,
    so no fetch goes ahead until it does (a name that fails now may resolve
    for the fetch's own lookup a moment later)."""
    endpoints = []
    for name, address in named:
        try:
            host, port = split_address(address)
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            raise errors.Unavailable(
                f"cannot resolve {name} at {address!r} ({exc}): "
                "no image is fetched until every mesh endpoint resolves",
                reason="MESH_ENDPOINT_UNRESOLVED",
            ) from exc
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
