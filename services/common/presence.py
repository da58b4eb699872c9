"""Where a node's presence lives: `/sfmesh/v1/node_presence/<name>`, its
agent's advertised address under a lease that agent keeps alive. The key
exists while the agent (and its host) lives, and a TTL after: the lease
runs out that long after they vanish or the agent stops. The leading scheduler
follows these keys to mark nodes `missing` and back `created`; the api
removes a deleted node's key."""

from __future__ import annotations

from services.common.store import key, kind_prefix

KIND = "node_presence"


def presence_key(node: str) -> bytes:
    """The presence key of node `node`."""
    return key(KIND, node)


def presence_prefix() -> bytes:
    """The prefix of every node's presence key."""
    return kind_prefix(KIND)


def node_of(at: bytes) -> str:
    """The node a presence key names. Pure."""
    return at[len(presence_prefix()) :].decode()
