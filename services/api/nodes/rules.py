"""Pure rules of nodes as the api sees them: the view clients get, what
`deleted` means in a record, and which instances and blobs a deleted node
still holds (reference §7)."""

from __future__ import annotations

from sfmesh.v1 import instance_pb2, node_service_pb2, records_pb2

from services.common import instance_states as states
from services.common.config import split_address

NODE_VERSION = 7
DELETED = node_service_pb2.NODE_STATE_DELETED
SETTLE_SECONDS = 300.0
"""How long after a node's deletion its instances are looked for again:
a create placed on it just before the scheduler heard of the deletion may
still be written within this (placement, then one transaction)."""


def node_view(record: records_pb2.NodeRecord) -> node_service_pb2.Node:
    """A node record as clients see it. Pure."""
    host = split_address(record.facts.address)[0] if record.facts.address else ""
    view = node_service_pb2.Node(
        uuid=record.name,
        state=record.state,
        version=NODE_VERSION,
        name=record.name,
        ip=host,
        lastseen=record.lastseen,
        is_hypervisor=True,
        is_cluster_maintainer=False,
    )
    view.metadata.CopyFrom(record.metadata)
    return view


def mark_deleted(record: records_pb2.NodeRecord, now: float) -> bool:
    """Make `record` say `deleted`, since `now`; False when it already did
    (a repeated delete changes nothing). Pure."""
    if record.state == DELETED:
        return False
    record.state = DELETED
    record.deleted_at = now
    return True


def left_on(instance: instance_pb2.Instance, node: str) -> bool:
    """Whether `instance` is still live on node `node`. Pure."""
    return instance.node == node and instance.state != states.DELETED


def unretired(record: records_pb2.NodeRecord) -> bool:
    """Whether a node is deleted but its follow-up not confirmed done. Pure."""
    return record.state == DELETED and not record.retired_at


def settled(record: records_pb2.NodeRecord, now: float) -> bool:
    """Whether no create can still land on a deleted node. Pure."""
    return now - record.deleted_at >= SETTLE_SECONDS


def without_location(blob: records_pb2.BlobRecord, node: str) -> None:
    """Drop `node` from a blob record's locations. Pure."""
    kept = [name for name in blob.blob.locations if name != node]
    del blob.blob.locations[:]
    blob.blob.locations.extend(kept)
