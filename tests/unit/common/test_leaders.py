"""Unit tests of services/common/leaders.py: the leader a read finds."""

from __future__ import annotations

from services.common.leaders import SCHEDULER, Leader, leader_key, leader_of
from services.common.store import Item


def test_the_key_of_a_roles_leader() -> None:
    assert leader_key(SCHEDULER) == b"/sfmesh/v1/leader/scheduler"


def test_the_key_names_the_leader() -> None:
    found = leader_of(Item(leader_key(SCHEDULER), b"10.0.0.2:13011", 40), "127.0.0.1:13011", 52)
    assert found == Leader("10.0.0.2:13011", revision=52, mod_revision=40)


def test_without_a_key_the_configured_address_is_called() -> None:
    assert leader_of(None, "127.0.0.1:13011", 52) == Leader("127.0.0.1:13011", 52, 0)
