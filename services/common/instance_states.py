"""The instance state table (reference §3.1), shared by the api and node
agents, which both move instances through it. Pure.

A delete of a placed instance goes to `delete-wait` from every state, the
error ones included (their domain may have been left behind), and to
`deleted` only once its node agent has torn it down; an instance never
placed may go to `deleted` at once (services/api/instances/deletion.py)."""

from __future__ import annotations

from sfmesh.v1 import instance_pb2

S = instance_pb2.InstanceState

INITIAL = S.INSTANCE_STATE_INITIAL
PREFLIGHT = S.INSTANCE_STATE_PREFLIGHT
CREATING = S.INSTANCE_STATE_CREATING
CREATED = S.INSTANCE_STATE_CREATED
DELETE_WAIT = S.INSTANCE_STATE_DELETE_WAIT
DELETED = S.INSTANCE_STATE_DELETED
ERROR = S.INSTANCE_STATE_ERROR
INITIAL_ERROR = S.INSTANCE_STATE_INITIAL_ERROR
PREFLIGHT_ERROR = S.INSTANCE_STATE_PREFLIGHT_ERROR
CREATING_ERROR = S.INSTANCE_STATE_CREATING_ERROR
CREATED_ERROR = S.INSTANCE_STATE_CREATED_ERROR
DELETE_WAIT_ERROR = S.INSTANCE_STATE_DELETE_WAIT_ERROR

_TO_DELETE = {DELETE_WAIT, DELETED}
_CLEANUP = {DELETE_WAIT, DELETED, ERROR}

TRANSITIONS: dict[int, frozenset[int]] = {
    S.INSTANCE_STATE_UNSPECIFIED: frozenset({INITIAL, ERROR}),
    INITIAL: frozenset({PREFLIGHT, INITIAL_ERROR, *_TO_DELETE}),
    PREFLIGHT: frozenset({CREATING, PREFLIGHT_ERROR, *_TO_DELETE}),
    CREATING: frozenset({CREATED, CREATING_ERROR, *_TO_DELETE}),
    CREATED: frozenset({CREATED_ERROR, *_TO_DELETE}),
    INITIAL_ERROR: frozenset(_CLEANUP),
    PREFLIGHT_ERROR: frozenset(_CLEANUP),
    CREATING_ERROR: frozenset(_CLEANUP),
    CREATED_ERROR: frozenset(_CLEANUP),
    ERROR: frozenset(_CLEANUP),
    DELETE_WAIT: frozenset({DELETED, DELETE_WAIT_ERROR}),
    DELETE_WAIT_ERROR: frozenset({ERROR}),
    DELETED: frozenset(),
}
"""For each state, the states it may move to."""

ACTIVE = frozenset(
    {
        INITIAL,
        INITIAL_ERROR,
        PREFLIGHT,
        PREFLIGHT_ERROR,
        CREATING,
        CREATING_ERROR,
        CREATED,
        CREATED_ERROR,
        DELETE_WAIT,
        ERROR,
    }
)
"""States listed by default and found by name."""


def may_transition(old: int, new: int) -> bool:
    """Whether an instance in `old` may move to `new`."""
    return new in TRANSITIONS[old]
