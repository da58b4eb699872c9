"""`python -m services.node_agent`: serves health, reflection and the published
`node_agent_service.proto` contract; its RPCs arrive with their own issue."""

from __future__ import annotations

from sfmesh.v1 import node_agent_service_pb2

from services.common.contract_only import run_contract_only

if __name__ == "__main__":
    run_contract_only(
        "node_agent", listen="127.0.0.1:13020", contract=node_agent_service_pb2.DESCRIPTOR
    )
