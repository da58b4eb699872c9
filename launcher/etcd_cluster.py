"""The `[etcd]` table of a host that runs an etcd member, and `mesh.etcd`,
the endpoints every service of the host is given. Pure.

A member alone is a one-member cluster, as `make run` has it. A member of a
cluster lists every member, itself included, by name and peer address, and
says whether the cluster is being made (`new`: each first member starts
with this list) or this member joins one that runs (`existing`, after
`etcdctl member add`):

    [etcd]
    initial_cluster = { cp1 = "10.0.0.1:13380", cp2 = "10.0.0.2:13380", cp3 = "10.0.0.3:13380" }
    cluster_state = "new"

A member's name is the host's name (`host.name`). The list matters only
for the first start: etcd keeps its membership in its data folder after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher import values
from launcher.addresses import Address
from launcher.roles import ETCD_KEYS, ETCD_PEER_PORT, ROLES

CLUSTER_STATES = ("new", "existing")


@dataclass(frozen=True)
class EtcdMember:
    """This host's etcd member."""

    listen: Address
    """Its client address."""
    peer: Address
    """Its peer address."""
    data_dir: Path
    cluster: tuple[tuple[str, Address], ...] = ()
    """Every member's name and advertised peer address, this one included;
    empty for a cluster of this member alone."""
    cluster_state: str = "new"
    """`new` to make the cluster, `existing` to join one that runs."""


def etcd_member(
    problems: list[str],
    table: Mapping[str, Any],
    *,
    name: str,
    state_dir: Path,
    advertised_peer: Any,
    address: str,
) -> EtcdMember:
    """This host's member from `[etcd]`; `advertised_peer(peer)` is how
    other hosts reach a peer listener of this host."""
    values.unknown_keys(problems, "etcd", table, ETCD_KEYS)
    data_dir = values.absolute_path(
        problems, "etcd.data_dir", table.get("data_dir", str(state_dir / "etcd"))
    )
    peer = values.address_at(problems, "etcd.peer", table, f"{address}:{ETCD_PEER_PORT}")
    state = table.get("cluster_state", "new")
    if state not in CLUSTER_STATES:
        problems.append(
            f"etcd.cluster_state: {state!r}: 'new' (making the cluster) or 'existing'"
            " (joining one that runs)"
        )
    cluster = _cluster(problems, table.get("initial_cluster"), name, advertised_peer(peer))
    if state == "existing" and not cluster:
        problems.append(
            "etcd.cluster_state: 'existing' needs etcd.initial_cluster, the members this one joins"
        )
    return EtcdMember(
        listen=values.address_at(problems, "etcd.listen", table, f"{address}:{ROLES['etcd'].port}"),
        peer=peer,
        data_dir=data_dir,
        cluster=cluster,
        cluster_state=str(state),
    )


def _cluster(
    problems: list[str], listed: Any, name: str, own_peer: Address
) -> tuple[tuple[str, Address], ...]:
    key = "etcd.initial_cluster"
    if listed is None:
        return ()
    if not isinstance(listed, Mapping) or not listed:
        problems.append(
            f"{key}: a table of every member's name and peer address,"
            ' e.g. { cp1 = "10.0.0.1:13380", cp2 = "10.0.0.2:13380" }'
        )
        return ()
    members = []
    for member, peer in listed.items():
        if not values.NAME.match(member):
            problems.append(f"{key}: {member!r} is not a name (letters, digits, '.', '_', '-')")
        members.append((member, values.address(problems, f"{key}.{member}", peer)))
    if name not in listed:
        problems.append(
            f"{key}: this host's member {name!r} (host.name) is not listed;"
            f' add {name} = "{own_peer}"'
        )
    elif dict(members)[name] != own_peer:
        problems.append(
            f"{key}.{name}: {dict(members)[name]} is not where this member's peers reach it"
            f" ({own_peer}, from etcd.peer and host.address)"
        )
    peers = [peer for _, peer in members]
    for peer in sorted({p for p in peers if peers.count(p) > 1}, key=str):
        problems.append(f"{key}: two members share the peer address {peer}")
    return tuple(members)


def mesh_endpoints(
    problems: list[str],
    listed: Any,
    member: EtcdMember | None,
    own_client: Address | None,
    *,
    used: bool,
) -> tuple[Address, ...]:
    """`mesh.etcd`: the client endpoints services are given, in order; this
    host's member alone when not set (and it runs one). `used`: a role of
    this host calls etcd."""
    key = "mesh.etcd"
    if listed is None:
        if used and member is not None and len(member.cluster) > 1:
            problems.append(
                f"{key}: required with a cluster of {len(member.cluster)} members: list each"
                " member's client endpoint, so that services fail over when one dies"
            )
        return (own_client,) if own_client is not None else ()
    if not isinstance(listed, list) or not listed:
        problems.append(
            f"{key}: a list of host:port client endpoints, e.g."
            " ['10.0.0.1:13379', '10.0.0.2:13379', '10.0.0.3:13379']"
        )
        return ()
    endpoints = tuple(values.address(problems, key, one) for one in listed)
    for endpoint in sorted({e for e in endpoints if endpoints.count(e) > 1}, key=str):
        problems.append(f"{key}: {endpoint} is listed twice")
    return endpoints
