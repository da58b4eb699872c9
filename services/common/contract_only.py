"""Serving a process whose contract is published before its implementation.

The scheduler, node agents and eventlog run from the first day, so the mesh's
shape, health and reflection are real; their RPCs answer UNIMPLEMENTED until
the issue that builds them lands.
"""

from __future__ import annotations

import asyncio

from google.protobuf.descriptor import FileDescriptor

from services.common.config import mesh_config
from services.common.main import parse_arguments, service_authority
from services.common.server import serve


def run_contract_only(service: str, *, listen: str, contract: FileDescriptor) -> None:
    """Parse flags and serve health, reflection and `contract`'s service names."""
    args = parse_arguments(service, listen=listen)
    mesh = mesh_config(args)
    names = [s.full_name for s in contract.services_by_name.values()]
    asyncio.run(
        serve(
            address=args.listen,
            servicers=[],
            published=names,
            authority=service_authority(mesh.state_dir),
        )
    )
