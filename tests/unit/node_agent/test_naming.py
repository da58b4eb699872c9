"""Domain names: a node recognises exactly its own."""

from __future__ import annotations

import pytest

from services.node_agent.naming import domain_name, instance_of, is_uuid

UUID = "8d3a0b34-5c1e-4d8e-9f0a-1b2c3d4e5f60"


def test_a_name_round_trips() -> None:
    assert domain_name("n1", UUID) == f"sfmesh-n1-{UUID}"
    assert instance_of("n1", domain_name("n1", UUID)) == UUID


@pytest.mark.parametrize(
    "name",
    [
        f"sfmesh-a-b-{UUID}",  # node a-b's, not a's
        f"sfmesh-a-{UUID}-x",
        f"sfmesh-a-{UUID.upper()}",
        "sfmesh-a-not-a-uuid",
        f"other-a-{UUID}",
    ],
)
def test_other_names_are_not_node_as(name: str) -> None:
    assert instance_of("a", name) is None


def test_is_uuid() -> None:
    assert is_uuid(UUID)
    assert not is_uuid("lost+found")
