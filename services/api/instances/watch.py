"""Pure decisions of the instance watches: which change a watcher sees, and
how it is told."""

from __future__ import annotations

from sfmesh.v1 import instance_pb2, instance_service_pb2

from services.api.visibility import can_see
from services.common import instance_states as states

Change = instance_service_pb2.ChangeType


def classify(
    before: instance_pb2.Instance | None, after: instance_pb2.Instance | None
) -> tuple[instance_service_pb2.ChangeType, instance_pb2.Instance]:
    """The kind of a change and the instance view to send with it."""
    if after is None:
        assert before is not None  # a change has at least one side
        return Change.CHANGE_TYPE_PURGED, before
    if before is None:
        return Change.CHANGE_TYPE_CREATED, after
    return Change.CHANGE_TYPE_UPDATED, after


def shown(
    namespace: str,
    include_inactive: bool,
    before: instance_pb2.Instance | None,
    after: instance_pb2.Instance | None,
) -> bool:
    """Whether a watcher in `namespace` sees this change.

    Without `include_inactive`, changes of instances that were and stay out of
    the active set (deleted ones) are skipped, but the change that takes an
    instance out of it is shown, so the watcher learns it left.
    """
    instance = after or before
    if instance is None or not can_see(namespace, instance.namespace):
        return False
    if include_inactive:
        return True
    return any(side is not None and side.state in states.ACTIVE for side in (before, after))
