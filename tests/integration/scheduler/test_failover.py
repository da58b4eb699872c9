"""Three `python -m services.scheduler` processes on one etcd, three node
agents' reporters (services/node_agent/reporter.py, with fixed capacities)
and the api's scheduler client (services/api/clients/scheduler.py): the
leader is killed with SIGKILL during a stream of placements; a follower
takes over and placements resume within 5 s, and the reservations the dead
leader made are honoured, so no node is placed over its capacity."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from sfmesh.v1 import instance_pb2, scheduler_service_pb2, scheduler_service_pb2_grpc

from services.api.clients.scheduler import Scheduler
from services.common import errors
from services.common.leaders import SCHEDULER, LeaderLookup
from services.common.main import service_authority
from services.common.store import Store
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport
from services.node_agent import reporter
from services.node_agent.facts import Capacity, HostFacts
from services.node_agent.presence import Presence
from tests.schedulers import forget_schedulers

FAILOVER_LIMIT = 5.0
"""Seconds from the leader's death to the next placement (issue 14)."""
SLOTS = 4
"""1 vCPU, 512 MiB instances each node holds: its memory over the 256 MiB
host reservation."""
NODES = 3
MEMORY = 512
KILL_AFTER = 5
"""Placements before the leader is killed: some of each node's capacity
is then held only by the dead leader's reservations."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replicas:
    """Scheduler processes by address."""

    state_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, etcd: str) -> None:
        """One more replica, with a state folder of its own (an event spool
        is one process's) holding the shared service key."""
        address = f"127.0.0.1:{free_port()}"
        own = self.state_dir / f"scheduler-{address.rpartition(':')[2]}"
        own.mkdir()
        shutil.copy(self.state_dir / "service.key", own / "service.key")
        log = (own / "log").open("wb")
        self.processes[address] = subprocess.Popen(
            [
                sys.executable, "-m", "services.scheduler",
                "--state-dir", str(own), "--etcd", etcd, "--listen", address,
                "--eventlog", "127.0.0.1:1", "--report-interval", "1",
                "--ram-reserved-mib", "256", "--min-free-disk-gib", "1",
                "--reservation-ttl", "60",
            ],
            env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self, address: str) -> None:
        process = self.processes.pop(address)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for address in list(self.processes):
            self.kill(address)


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    connection = Store(etcd)
    await forget_schedulers(connection)
    yield connection
    await forget_schedulers(connection)
    await connection.close()


@pytest.fixture
def replicas(etcd: str, tmp_path: Path) -> Iterator[Replicas]:
    service_authority(tmp_path, Transport())  # the service key every replica and client shares
    started = Replicas(tmp_path)
    for _ in range(3):
        started.start(etcd)
    yield started
    started.stop_all()


async def until(condition: object, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def capacity() -> Capacity:
    """A node that holds SLOTS instances by memory and never reports one
    (its reservations are all that count what is placed on it)."""
    return Capacity(
        cpus_total=64,
        cpus_used=0,
        memory_total_mib=8192,
        memory_free_mib=256 + SLOTS * MEMORY,
        disk_free_gib=100,
        load_1m=0.0,
    )


async def test_placement_resumes_within_5_s_of_the_leader_dying_and_overcommits_nothing(
    etcd: str, store: Store, replicas: Replicas, tmp_path: Path
) -> None:
    authority = service_authority(tmp_path, Transport())
    leaders = LeaderLookup(store, SCHEDULER, fallback="")
    addresses = list(replicas.processes)

    async def elected() -> bool:
        return (await leaders.read()).address in addresses

    async def all_serving() -> bool:
        return all([await serving(address, authority) for address in addresses])

    await until(elected, 20, "a leader")
    await until(all_serving, 20, "every replica")
    leader = (await leaders.read()).address
    for address in addresses:
        if address != leader:
            refusal = await refused_placement(address, authority)
            assert refusal is not None and refusal.code() == grpc.StatusCode.UNAVAILABLE
            assert refusal.details() == f"this scheduler does not lead: the leader is {leader}"

    names = [f"failover-{uuid.uuid4().hex[:6]}-{n}" for n in range(NODES)]
    reporting = [
        *(asyncio.create_task(Presence(store, name, "127.0.0.1:1").run()) for name in names),
        *(
            asyncio.create_task(
                reporter.Reporter(
                    leaders=LeaderLookup(store, SCHEDULER, fallback=addresses[0]),
                    facts=HostFacts(node=name, address="127.0.0.1:1", kvm=False),
                    sample=capacity,
                    credentials=InternalCredentials(authority, "node_agent").metadata,
                    transport=Transport(),
                ).run()
            )
            for name in names
        ),
    ]
    client = Scheduler(
        addresses[0], InternalCredentials(authority, "api"), store, transport=Transport()
    )
    try:

        async def all_reported() -> bool:
            return all([await store.get(b"/sfmesh/v1/node/" + n.encode()) for n in names])

        await until(all_reported, 10, "the nodes' first reports")
        placed: Counter[str] = Counter()
        loop = asyncio.get_running_loop()
        killed_at = resumed_at = 0.0
        deadline = loop.time() + 60
        while loop.time() < deadline:
            try:
                placement = await client.place(instance(), "failover")
            except (errors.Unavailable, errors.InsufficientResources) as exc:
                if isinstance(exc, errors.InsufficientResources):
                    break  # final: every node reported to the new leader, and is full
                await asyncio.sleep(0.02)
                continue
            placed[placement.node] += 1
            if killed_at and not resumed_at:
                resumed_at = loop.time()
            if sum(placed.values()) == KILL_AFTER:
                replicas.kill(leader)
                killed_at = loop.time()
        failover = resumed_at - killed_at
        print(f"\nscheduler failover: {failover:.2f} s (limit {FAILOVER_LIMIT:.0f} s)")
        assert killed_at and resumed_at, placed
        assert failover < FAILOVER_LIMIT
        new_leader = (await leaders.read()).address
        assert new_leader in addresses and new_leader != leader
        # The dead leader's reservations were honoured: each node got exactly
        # what it holds, not SLOTS more beside what the dead leader placed.
        assert dict(placed) == {name: SLOTS for name in names}
    finally:
        for task in reporting:
            await reporter.stop(task)
        await client.close()


def instance() -> instance_pb2.Instance:
    return instance_pb2.Instance(uuid=str(uuid.uuid4()), cpus=1, memory=MEMORY, namespace="ha")


async def serving(address: str, authority: TokenAuthority) -> bool:
    """Whether the scheduler at `address` answers (as leader or not)."""
    error = await refused_placement(address, authority)
    return error is None or "does not lead" in error.details() or "No nodes" in error.details()


async def refused_placement(address: str, authority: TokenAuthority) -> grpc.aio.AioRpcError | None:
    """The error a placement sent straight to `address` ends with."""
    token = authority.issue_internal("api")
    async with grpc.aio.insecure_channel(address) as channel:
        stub = scheduler_service_pb2_grpc.SchedulerServiceStub(channel)
        request = scheduler_service_pb2.PlaceInstanceRequest(
            instance_uuid=str(uuid.uuid4()), cpus=1, memory=1, request_id="probe"
        )
        try:
            await stub.PlaceInstance(
                request, metadata=(("authorization", f"Bearer {token}"),), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            return error
    return None
