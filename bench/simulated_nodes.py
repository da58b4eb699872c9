"""Simulated hypervisors for benchmarks: each holds its presence lease in
etcd and a real `ReportNode` stream open to the mesh's scheduler, as a node
agent does, and reports a fixed capacity once. They run on an event loop
of their own in a thread. On a TLS mesh they present a node agent
certificate issued from its CA."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from sfmesh.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc

from devmesh.certificates import issue
from devmesh.mesh import Mesh
from launcher.tls import transport
from services.common.main import service_authority
from services.common.store import Store
from services.common.tokens import InternalCredentials
from services.common.transport import Transport
from services.node_agent.presence import Presence


class SimulatedNodes:
    """`count` nodes named `sim-<n>`, each with a big capacity; a context manager."""

    def __init__(self, mesh: Mesh, count: int, *, cpus: int = 64) -> None:
        self._mesh = mesh
        self._count = count
        self._cpus = cpus
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="simulated-nodes", daemon=True)

    def __enter__(self) -> SimulatedNodes:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    def _report(self, index: int) -> scheduler_service_pb2.ReportNodeRequest:
        return scheduler_service_pb2.ReportNodeRequest(
            facts=scheduler_service_pb2.HypervisorFacts(node=_name(index), address=_address(index)),
            cpus_total=self._cpus,
            memory_total_mib=1 << 20,
            memory_free_mib=1 << 20,
            disk_free_gib=100_000,
            load_1m=(index % 97) / 100,
        )

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        calling = node_transport(self._mesh)
        credentials = InternalCredentials(
            service_authority(self._mesh.state_dir, calling), "node_agent"
        )
        metadata = credentials.metadata()
        store = Store(self._mesh.address("etcd_client"), transport=calling)
        presences = [Presence(store, _name(index), _address(index)) for index in range(self._count)]
        holding = [asyncio.create_task(presence.run()) for presence in presences]
        try:
            await asyncio.gather(*(presence.held.wait() for presence in presences))
            async with calling.channel(self._mesh.address("scheduler")) as channel:
                stub = scheduler_service_pb2_grpc.SchedulerServiceStub(channel)
                calls = [stub.ReportNode(metadata=metadata) for _ in range(self._count)]
                for index, call in enumerate(calls):
                    await call.write(self._report(index))
                for call in calls:
                    await call.read()
                self._ready.set()
                await self._stop.wait()
                for call in calls:
                    call.cancel()
        except BaseException as exc:  # surfaced to __enter__
            self._error = exc
            self._ready.set()
        finally:
            for task in holding:
                task.cancel()
            await asyncio.gather(*holding, return_exceptions=True)
            await store.close()


def _name(index: int) -> str:
    return f"sim-{index}"


def _address(index: int) -> str:
    return f"127.0.0.1:{20000 + index}"


def node_transport(mesh: Mesh) -> Transport:
    """How simulated nodes reach the scheduler: plaintext, or on a TLS mesh
    as a node agent whose certificate its CA issues now."""
    if mesh.certificates is None:
        return Transport()
    folder = mesh.state_dir / "simulated-nodes"
    return transport(issue(mesh.ca_folder, folder, "simulated", ["node_agent"]), "node_agent")
