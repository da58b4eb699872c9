"""services/api/instances/watch.py: which instance changes a watcher sees, and as what."""

from __future__ import annotations

from sfmesh.v1 import instance_pb2, instance_service_pb2

from services.api.instances.watch import classify, shown
from services.common import instance_states as states

Change = instance_service_pb2.ChangeType


def instance(
    state: instance_pb2.InstanceState = states.INITIAL, namespace: str = "demo"
) -> instance_pb2.Instance:
    return instance_pb2.Instance(uuid="u", namespace=namespace, state=state)


def test_classify_created_updated_purged() -> None:
    new, old = instance(states.CREATED), instance(states.INITIAL)
    assert classify(None, new) == (Change.CHANGE_TYPE_CREATED, new)
    assert classify(old, new) == (Change.CHANGE_TYPE_UPDATED, new)
    assert classify(old, None) == (Change.CHANGE_TYPE_PURGED, old)


def test_other_namespaces_see_nothing_but_system_sees_all() -> None:
    change = (None, instance(namespace="demo"))
    assert shown("demo", False, *change)
    assert shown("system", False, *change)
    assert not shown("other", True, *change)


def test_leaving_the_active_set_is_shown_once() -> None:
    active, deleted = instance(states.INITIAL), instance(states.DELETED)
    assert shown("demo", False, active, deleted)
    assert not shown("demo", False, deleted, deleted)
    assert not shown("demo", False, deleted, None)
    assert shown("demo", True, deleted, None)
