"""services/node_agent/peers.py's pure part: which addresses a node floods to."""

from __future__ import annotations

from sfmesh.v1 import records_pb2, scheduler_service_pb2

from services.node_agent.peers import underlay_peers


def record(name: str, underlay: str) -> bytes:
    facts = scheduler_service_pb2.HypervisorFacts(node=name, underlay_address=underlay)
    return records_pb2.NodeRecord(name=name, facts=facts).SerializeToString()


def test_every_other_node_with_an_underlay_is_a_peer() -> None:
    records = [
        record("a", "10.99.0.1"),
        record("b", "10.99.0.2"),
        record("c", "10.99.0.3"),
        record("no-vxlan", ""),
        record("bad", "10.99.0.300"),
        record("v6", "fd00::1"),
    ]
    assert underlay_peers(records, "a") == {"10.99.0.2", "10.99.0.3"}
    assert underlay_peers(records, "elsewhere") == {"10.99.0.1", "10.99.0.2", "10.99.0.3"}
    assert underlay_peers([], "a") == frozenset()
