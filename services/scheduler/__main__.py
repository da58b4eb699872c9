"""`python -m services.scheduler`: serves health, reflection and the published
`scheduler_service.proto` contract; its RPCs arrive with their own issue."""

from __future__ import annotations

from sfmesh.v1 import scheduler_service_pb2

from services.common.contract_only import run_contract_only

if __name__ == "__main__":
    run_contract_only(
        "scheduler", listen="127.0.0.1:13011", contract=scheduler_service_pb2.DESCRIPTOR
    )
