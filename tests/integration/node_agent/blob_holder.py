"""A node agent's `ReadBlob` in a process of its own, for tests that kill a
holder outright (SIGKILL) in the middle of a copy.

It serves what a node agent serves peers: the real `TransferServicer` over
the node's blob folder, through the services' own bootstrap
(``services.common.server.serve``: interceptors, token checks, health), and
prints one line per ReadBlob call, `read <blob uuid> <offset>`, so a test
can tell which holder a copy reads from and where a resumed stream starts.

    python -m tests.integration.node_agent.blob_holder STATE_DIR ADDRESS SECRET

`STATE_DIR/blobs` holds the blobs; `SECRET` is the mesh's internal token
key. It serves until killed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from sfmesh.v1 import node_agent_service_pb2, node_agent_service_pb2_grpc

from services.common.server import Servicer, serve, start_server
from services.common.tokens import TokenAuthority
from services.common.transport import Transport
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.transfers import TransferServicer
from services.node_agent.uploads import UploadFiles


class ReportedReads(TransferServicer):
    """The node agent's transfers, each ReadBlob call printed as it starts."""

    async def ReadBlob(
        self,
        request: node_agent_service_pb2.ReadBlobRequest,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[node_agent_service_pb2.ReadBlobResponse]:
        print(f"read {request.blob_uuid} {request.offset}", flush=True)
        async for reply in super().ReadBlob(request, context):
            yield reply


async def hold(state: Path, address: str, secret: str) -> None:
    """Serve ReadBlob of the blobs under `state` at `address` until stopped."""
    blobs = LocalBlobStore(state / "blobs")
    servicer = ReportedReads(uploads=UploadFiles(state / "uploads", blobs), blobs=blobs)
    running = await start_server(
        address=address,
        servicers=[
            Servicer(
                "sfmesh.v1.NodeAgentService",
                servicer,
                node_agent_service_pb2_grpc.add_NodeAgentServiceServicer_to_server,
            )
        ],
        authority=TokenAuthority(internal_secret=secret),
        transport=Transport(),
    )
    await serve(running)


if __name__ == "__main__":
    asyncio.run(hold(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
