"""services/api/nodes/servicer.py: the node view of other-apis §4.1."""

from __future__ import annotations

from sfmesh.v1 import node_service_pb2, records_pb2, scheduler_service_pb2

from services.api.nodes.servicer import node_view


def test_node_view_from_a_record() -> None:
    record = records_pb2.NodeRecord(
        name="hv1",
        state=node_service_pb2.NODE_STATE_MISSING,
        facts=scheduler_service_pb2.HypervisorFacts(node="hv1", address="10.0.0.5:13020"),
        lastseen=1700000000.5,
    )
    view = node_view(record)
    assert (view.uuid, view.name, view.ip, view.version) == ("hv1", "hv1", "10.0.0.5", 7)
    assert view.state == node_service_pb2.NODE_STATE_MISSING
    assert view.lastseen == 1700000000.5
    assert view.is_hypervisor
    assert view.HasField("metadata")
