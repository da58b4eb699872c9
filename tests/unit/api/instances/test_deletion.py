"""The pure rules of services/api/instances/deletion.py."""

from __future__ import annotations

import pytest
from sfmesh.v1 import instance_pb2, records_pb2

from services.api.instances.deletion import ask_deletion, check_deletable, finishable, mark_deleted
from services.common import errors
from services.common import instance_states as states


def record(state: int, *, node: str = "n", torn_down_at: float = 0.0) -> records_pb2.InstanceRecord:
    instance = instance_pb2.Instance(uuid="u", node=node, state=state)  # type: ignore[arg-type]
    return records_pb2.InstanceRecord(instance=instance, torn_down_at=torn_down_at)


@pytest.mark.parametrize(
    "state",
    [
        states.INITIAL,
        states.PREFLIGHT,
        states.CREATING,
        states.CREATED,
        states.CREATED_ERROR,
        states.ERROR,  # its domain may have been left behind: it waits too
        states.DELETE_WAIT,  # a second delete
    ],
)
def test_a_placed_instance_waits_for_its_node_agent(state: int) -> None:
    asked = record(state)
    ask_deletion(asked)
    assert asked.instance.state == states.DELETE_WAIT


def test_a_deleted_instance_cannot_be_deleted_again() -> None:
    with pytest.raises(errors.NotFound, match="instance not found"):
        ask_deletion(record(states.DELETED))


def test_deleted_is_gone_and_a_state_that_may_not_end_is_a_conflict() -> None:
    with pytest.raises(errors.NotFound, match="instance not found"):
        check_deletable(record(states.DELETED, node="").instance, states.DELETED)
    stuck = record(states.DELETE_WAIT_ERROR, node="").instance  # may go only to error
    with pytest.raises(errors.Conflict, match="instance u cannot be deleted from its current"):
        check_deletable(stuck, states.DELETED)
    with pytest.raises(errors.Conflict, match="cannot be deleted from its current state"):
        ask_deletion(record(states.DELETE_WAIT_ERROR))
    check_deletable(record(states.INITIAL, node="").instance, states.DELETED)


def test_only_a_teardown_lets_a_placed_delete_end() -> None:
    assert not finishable(record(states.DELETE_WAIT))
    assert finishable(record(states.DELETE_WAIT, torn_down_at=1.0))
    assert not finishable(record(states.DELETED, torn_down_at=1.0))
    assert not finishable(record(states.CREATED), asking=True)


def test_an_unplaced_instance_ends_when_asked() -> None:
    assert finishable(record(states.INITIAL, node=""), asking=True)
    assert finishable(record(states.DELETE_WAIT, node=""))  # asked, then stopped half-way
    assert not finishable(record(states.INITIAL, node=""))  # a live one: nobody asked
    assert not finishable(record(states.DELETED, node=""), asking=True)


def test_an_instance_of_a_deleted_node_ends_from_any_state_but_deleted() -> None:
    for state in (states.CREATED, states.CREATING, states.ERROR, states.DELETE_WAIT):
        assert finishable(record(state), orphaned=True)
    assert not finishable(record(states.DELETED), orphaned=True)


def test_deleted_means_off_with_its_nics_deleted() -> None:
    ended = record(states.DELETE_WAIT, torn_down_at=1.0)
    ended.instance.interfaces.add(uuid="nic", state=instance_pb2.INTERFACE_STATE_CREATED)
    mark_deleted(ended, 5.0)
    assert ended.instance.state == states.DELETED
    assert ended.instance.power_state == instance_pb2.POWER_STATE_OFF
    assert ended.instance.interfaces[0].state == instance_pb2.INTERFACE_STATE_DELETED
    assert ended.deleted_at == 5.0
