"""A node record's states as the leading scheduler moves them. Pure.

A node is `created` while its agent holds its presence lease in etcd, and
`missing` once that lease expired: its agent, or the host under it, is gone
(`presence.py` follows the leases). The api writes `deleted`, which is final:
nothing here moves a node out of it, and a deleted node's agent is refused.
Every function answers the record to write, or None when nothing changes;
`metadata`, `deleted_at` and `retired_at` are the api's and are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfmesh.v1 import node_service_pb2, records_pb2, scheduler_service_pb2

from services.common import errors

CREATED = node_service_pb2.NODE_STATE_CREATED
MISSING = node_service_pb2.NODE_STATE_MISSING
DELETED = node_service_pb2.NODE_STATE_DELETED


class NodeDeleted(errors.Conflict):
    """A deleted node's agent reported: a deleted node never comes back."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"node {name} was deleted, and a deleted node is never used again: "
            "give this hypervisor another name to add it back",
            reason="NODE_DELETED",
        )


class NotPresent(errors.Conflict):
    """A node agent reported without holding its presence lease."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"node {name} holds no presence lease in etcd: report once it does",
            reason="NODE_NOT_PRESENT",
        )


@dataclass(frozen=True)
class Written:
    """A record to write, and the state change it makes (for its events)."""

    record: records_pb2.NodeRecord
    became: str
    """"created", "missing" or "back" (missing, then created again); "" when
    the state stays."""


def registered(
    found: records_pb2.NodeRecord | None,
    facts: scheduler_service_pb2.HypervisorFacts,
    report: scheduler_service_pb2.ReportNodeRequest,
    now: float,
    *,
    present: bool | None,
) -> Written:
    """The record of a node whose stream reports: `created`, with its facts
    and last report. `present`: whether its presence key exists, or None
    when not read (a stream's later reports), when a `missing` record says
    it went. Raises NodeDeleted, then NotPresent."""
    if found is not None and found.state == DELETED:
        raise NodeDeleted(found.name)
    if present is False or (present is None and found is not None and found.state == MISSING):
        raise NotPresent(facts.node)
    record = records_pb2.NodeRecord()
    if found is not None:
        record.CopyFrom(found)
    record.name = facts.node
    record.facts.CopyFrom(facts)
    record.lastseen = now
    record.last_report.CopyFrom(report)
    record.last_report.ClearField("facts")
    record.state = CREATED
    return Written(record, _became(found, CREATED))


def lapsed(found: records_pb2.NodeRecord) -> Written | None:
    """A node whose presence lease is gone: `missing` if it was created."""
    if found.state != CREATED:
        return None
    record = records_pb2.NodeRecord()
    record.CopyFrom(found)
    record.state = MISSING
    return Written(record, "missing")


def returned(found: records_pb2.NodeRecord) -> Written | None:
    """A missing node whose agent holds its presence lease again: `created`."""
    if found.state != MISSING:
        return None
    record = records_pb2.NodeRecord()
    record.CopyFrom(found)
    record.state = CREATED
    return Written(record, "back")


def _became(found: records_pb2.NodeRecord | None, state: int) -> str:
    if found is None:
        return "created"
    if found.state == state:
        return ""
    return "back" if found.state == MISSING else "created"
