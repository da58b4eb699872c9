"""Who runs what where in the cloud, and each host's config. Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devmesh.cloud.lan import NETBLOCK, ROOT_ADDRESS
from devmesh.mesh import SMALL_MACHINE, set_variables
from launcher.roles import ETCD_PEER_PORT, ROLES

CONTROL_PLANE = ("cp1", "cp2", "cp3")
HYPERVISORS = ("hv1", "hv2")
CENTRE = "cp1"
"""The control-plane host whose scheduler every host falls back to while no
scheduler replica leads (`[mesh] scheduler`), and whose gateway the
hypervisors name (`[mesh] gateway`)."""
FIRST_MEMBER_OF_HYPERVISORS = "cp3"
"""The etcd member the node agents try first."""
HOST_ROLES = {
    "cp1": ("etcd", "eventlog", "scheduler", "api", "gateway"),
    "cp2": ("etcd", "eventlog", "scheduler", "api", "gateway"),
    "cp3": ("etcd", "eventlog", "scheduler", "api", "gateway"),
    "hv1": ("node_agent",),
    "hv2": ("node_agent",),
}
"""Each host's roles, in the order they start."""
ADDRESSES = {
    **{host: str(NETBLOCK[11 + n]) for n, host in enumerate(CONTROL_PLANE)},
    **{host: str(NETBLOCK[21 + n]) for n, host in enumerate(HYPERVISORS)},
}


def endpoint(host: str, role: str) -> str:
    """host:port of `role` on `host`: its default port at the host's address."""
    return f"{ADDRESSES[host]}:{ROLES[role].port}"


def etcd_endpoints(host: str) -> list[str]:
    """Every member's client endpoint, in the order `host`'s services try
    them: its own member first, else `FIRST_MEMBER_OF_HYPERVISORS`'s."""
    first = host if host in CONTROL_PLANE else FIRST_MEMBER_OF_HYPERVISORS
    order = [first, *(member for member in CONTROL_PLANE if member != first)]
    return [endpoint(member, "etcd") for member in order]


def replicas(role: str) -> list[str]:
    """Every replica of `role` by endpoint, the same list on every host:
    its clients balance round robin over those that serve, in no order."""
    return [endpoint(host, role) for host in CONTROL_PLANE if role in HOST_ROLES[host]]


def host_document(
    host: str, folder: Path, *, image_url: str, database: str, cluster_state: str = "new"
) -> dict[str, dict[str, Any]]:
    """The host config of `host`, whose folder is `folder` (its state in
    `state/`, its certificates in `tls/`). Its node agents' `debian:11` is
    `image_url`, which they may fetch from the root namespace's address;
    its eventlog replica stores events in the PostgreSQL `database` (a URL)."""
    roles = HOST_ROLES[host]
    document: dict[str, dict[str, Any]] = {
        "host": {
            "name": host,
            "roles": list(roles),
            "address": ADDRESSES[host],
            "state_dir": str(folder / "state"),
        },
        "mesh": {
            "etcd": etcd_endpoints(host),
            "api": replicas("api"),
            "eventlog": replicas("eventlog"),
        },
        "tls": {"dir": str(folder / "tls")},
    }
    # Clients find the leading scheduler in etcd's leader key; `[mesh]
    # scheduler` is only their fallback, cp1's on every host.
    document["mesh"]["scheduler"] = endpoint(CENTRE, "scheduler")
    if "gateway" not in roles:
        document["mesh"]["gateway"] = endpoint(CENTRE, "gateway")
    if "eventlog" in roles:
        document["eventlog"] = {"database": database}
    if "etcd" in roles:
        members = {member: f"{ADDRESSES[member]}:{ETCD_PEER_PORT}" for member in CONTROL_PLANE}
        document["etcd"] = {"initial_cluster": members, "cluster_state": cluster_state}
    settings = {
        **SMALL_MACHINE,
        "SFMESH_IMAGE_SHORTHANDS": f"debian:11={image_url}",
        "SFMESH_IMAGE_ALLOWED_NETWORKS": f"{ROOT_ADDRESS}/32",
    }
    set_variables(document, settings, strict=False)
    return document
