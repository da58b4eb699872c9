"""services/common/instance_states.py: the transition table of reference §3.1."""

from __future__ import annotations

import itertools

import pytest
from sfmesh.v1 import instance_pb2

from services.common import instance_states as states

S = instance_pb2.InstanceState
NEW = S.INSTANCE_STATE_UNSPECIFIED

# Reference §3.1, spelled out independently of the module's table.
ALLOWED: dict[int, set[int]] = {
    NEW: {states.INITIAL, states.ERROR},
    states.INITIAL: {states.PREFLIGHT, states.DELETE_WAIT, states.DELETED, states.INITIAL_ERROR},
    states.PREFLIGHT: {
        states.CREATING,
        states.DELETE_WAIT,
        states.DELETED,
        states.PREFLIGHT_ERROR,
    },
    states.CREATING: {states.CREATED, states.DELETE_WAIT, states.DELETED, states.CREATING_ERROR},
    states.CREATED: {states.DELETE_WAIT, states.DELETED, states.CREATED_ERROR},
    states.INITIAL_ERROR: {states.DELETE_WAIT, states.DELETED, states.ERROR},
    states.PREFLIGHT_ERROR: {states.DELETE_WAIT, states.DELETED, states.ERROR},
    states.CREATING_ERROR: {states.DELETE_WAIT, states.DELETED, states.ERROR},
    states.CREATED_ERROR: {states.DELETE_WAIT, states.DELETED, states.ERROR},
    states.ERROR: {states.DELETE_WAIT, states.DELETED, states.ERROR},
    states.DELETE_WAIT: {states.DELETED, states.DELETE_WAIT_ERROR},
    states.DELETE_WAIT_ERROR: {states.ERROR},
    states.DELETED: set(),
}
ALL = list(S.values())


@pytest.mark.parametrize(
    ("old", "new"),
    [(old, new) for old, targets in ALLOWED.items() for new in sorted(targets)],
    ids=lambda state: S.Name(state),
)
def test_every_reference_transition_allowed(old: int, new: int) -> None:
    assert states.may_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (states.CREATED, states.INITIAL),
        (states.CREATED, states.PREFLIGHT),
        (states.CREATED, states.CREATED),
        (states.INITIAL, states.CREATED),
        (states.INITIAL, states.CREATING),
        (states.INITIAL, states.ERROR),
        (states.PREFLIGHT, states.INITIAL),
        (states.CREATING, states.PREFLIGHT),
        (states.DELETE_WAIT, states.CREATED),
        (states.DELETE_WAIT, states.ERROR),
        (states.DELETE_WAIT_ERROR, states.DELETED),
        (states.ERROR, states.CREATED),
        (states.INITIAL_ERROR, states.INITIAL),
        (NEW, states.CREATED),
        (NEW, states.DELETED),
    ],
    ids=lambda state: S.Name(state),
)
def test_sample_of_forbidden_transitions(old: int, new: int) -> None:
    assert not states.may_transition(old, new)


def test_table_is_exactly_the_reference() -> None:
    """No transition allowed beyond §3.1, over every pair of states."""
    assert set(states.TRANSITIONS) == set(ALL)
    for old, new in itertools.product(ALL, ALL):
        assert states.may_transition(old, new) == (new in ALLOWED[old]), (S.Name(old), S.Name(new))


@pytest.mark.parametrize("new", ALL, ids=lambda state: S.Name(state))
def test_deleted_is_terminal(new: int) -> None:
    assert not states.may_transition(states.DELETED, new)


def test_nothing_returns_to_new() -> None:
    assert all(not states.may_transition(old, NEW) for old in ALL)


def test_active_set_exact() -> None:
    names = {S.Name(state) for state in states.ACTIVE}
    assert names == {
        "INSTANCE_STATE_INITIAL",
        "INSTANCE_STATE_INITIAL_ERROR",
        "INSTANCE_STATE_PREFLIGHT",
        "INSTANCE_STATE_PREFLIGHT_ERROR",
        "INSTANCE_STATE_CREATING",
        "INSTANCE_STATE_CREATING_ERROR",
        "INSTANCE_STATE_CREATED",
        "INSTANCE_STATE_CREATED_ERROR",
        "INSTANCE_STATE_DELETE_WAIT",
        "INSTANCE_STATE_ERROR",
    }
    assert states.DELETED not in states.ACTIVE
    assert states.DELETE_WAIT_ERROR not in states.ACTIVE


def test_constants_name_their_states() -> None:
    assert S.Name(states.INITIAL) == "INSTANCE_STATE_INITIAL"
    assert S.Name(states.DELETE_WAIT_ERROR) == "INSTANCE_STATE_DELETE_WAIT_ERROR"
    assert S.Name(states.CREATED_ERROR) == "INSTANCE_STATE_CREATED_ERROR"
