"""services/node_agent/reporter.py against a real grpc.aio server on loopback.

The server is a small recording implementation of the
`SchedulerService.ReportNode` contract, kept here because the real scheduler
is written apart: it records every report with its stream and arrival time,
verifies the bearer token as the scheduler's interceptor would, answers a
configurable interval, and can drop a stream or stop answering."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sfmesh.v1 import scheduler_service_pb2, scheduler_service_pb2_grpc

from services.common.leaders import SCHEDULER, LeaderLookup, leader_key
from services.common.main import service_authority
from services.common.store import Delete, Put, Store
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport
from services.node_agent import facts, reporter
from services.node_agent.facts import Capacity, HostFacts

ReportNodeRequest = scheduler_service_pb2.ReportNodeRequest
ReportNodeResponse = scheduler_service_pb2.ReportNodeResponse
HOST = HostFacts(node="node-a", address="127.0.0.1:13020", kvm=False)
CAPACITY = Capacity(
    cpus_total=4,
    cpus_used=0,
    memory_total_mib=8000,
    memory_free_mib=6000,
    disk_free_gib=40,
    load_1m=0.25,
)


@dataclass
class Report:
    stream: int
    at: float
    request: ReportNodeRequest


class FakeScheduler(scheduler_service_pb2_grpc.SchedulerServiceServicer):
    """Records reports; answers `interval` (or the next of `intervals`)."""

    def __init__(self, authority: TokenAuthority) -> None:
        self.authority = authority
        self.reports: list[Report] = []
        self.streams = 0
        self.callers: list[str] = []
        """The key name of each stream's verified caller."""
        self.interval = 1
        self.intervals: list[int] = []
        """Answered in turn before falling back to `interval`."""
        self.drop_after: int | None = None
        """Abort the current stream once it has brought this many reports."""
        self.silent_streams = 0
        """This many next streams record reports but never answer."""

    async def ReportNode(
        self,
        request_iterator: AsyncIterator[ReportNodeRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[ReportNodeResponse]:
        header = dict(context.invocation_metadata() or ()).get("authorization", "")
        scheme, _, token = str(header).partition(" ")
        if scheme != "Bearer":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no bearer token")
        try:
            caller = self.authority.verify(token, internal=True)
        except Exception as exc:  # a user token, a bad signature, an expired one
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        self.callers.append(caller.key_name)
        self.streams += 1
        stream = self.streams
        silent = self.silent_streams > 0
        self.silent_streams -= 1 if silent else 0
        brought = 0
        async for request in request_iterator:
            self.reports.append(Report(stream, asyncio.get_running_loop().time(), request))
            brought += 1
            if self.drop_after is not None and brought >= self.drop_after:
                self.drop_after = None
                await context.abort(grpc.StatusCode.UNAVAILABLE, "dropped by the test")
            if silent:
                continue
            interval = self.intervals.pop(0) if self.intervals else self.interval
            yield ReportNodeResponse(report_interval_seconds=interval)

    def of_stream(self, stream: int) -> list[ReportNodeRequest]:
        return [r.request for r in self.reports if r.stream == stream]


class SchedulerProcess:
    """A grpc.aio server that can be stopped and started again on one port."""

    def __init__(self, servicer: FakeScheduler) -> None:
        self.servicer = servicer
        self.port = 0
        self.server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        server = grpc.aio.server()
        scheduler_service_pb2_grpc.add_SchedulerServiceServicer_to_server(self.servicer, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
            self.server = None


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `condition()` holds, failing after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def authority() -> TokenAuthority:
    return TokenAuthority(internal_secret="a-service-key-for-the-reporter-tests-0123456789")


@pytest.fixture
async def scheduler(authority: TokenAuthority) -> AsyncIterator[SchedulerProcess]:
    process = SchedulerProcess(FakeScheduler(authority))
    await process.start()
    yield process
    await process.stop()


Sleeps = list[float]


def fast_sleep(asked: Sleeps) -> Callable[[float], Awaitable[None]]:
    """A sleep that records the interval asked for and waits a tenth of it."""

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.sleep(seconds / 10)

    return sleep


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    """The session's etcd, with no scheduler leader key left in it."""
    connection = Store(etcd)
    await connection.commit([Delete(leader_key(SCHEDULER))])
    yield connection
    await connection.close()


@pytest.fixture
def start_reporter(
    scheduler: SchedulerProcess, authority: TokenAuthority, store: Store
) -> Iterator[Callable[..., asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []

    def start(**overrides: Any) -> asyncio.Task[None]:
        options: dict[str, Any] = {
            "leaders": LeaderLookup(store, SCHEDULER, fallback=scheduler.address),
            "facts": HOST,
            "sample": lambda: CAPACITY,
            "credentials": InternalCredentials(authority, "node_agent").metadata,
            "transport": Transport(),
            "sleep": fast_sleep([]),
        }
        options.update(overrides)
        task = asyncio.create_task(reporter.Reporter(**options).run())
        tasks.append(task)
        return task

    yield start
    for task in tasks:
        task.cancel()


async def test_first_report_carries_facts_and_later_ones_do_not(
    scheduler: SchedulerProcess, start_reporter: Callable[..., asyncio.Task[None]]
) -> None:
    task = start_reporter()
    await eventually(lambda: len(scheduler.servicer.reports) >= 3)
    await reporter.stop(task)
    first, *rest = scheduler.servicer.of_stream(1)
    assert first.HasField("facts")
    assert (first.facts.node, first.facts.address, first.facts.kvm) == (
        "node-a",
        "127.0.0.1:13020",
        False,
    )
    assert first.facts.libvirt_version == ""
    assert (first.cpus_total, first.cpus_used, first.memory_total_mib) == (4, 0, 8000)
    assert (first.memory_free_mib, first.disk_free_gib) == (6000, 40)
    assert first.load_1m == pytest.approx(0.25)
    assert list(first.instance_uuids) == []
    assert rest and not any(r.HasField("facts") for r in rest)


async def test_stream_carries_an_internal_token_of_the_node_agent(
    scheduler: SchedulerProcess,
    authority: TokenAuthority,
    start_reporter: Callable[..., asyncio.Task[None]],
) -> None:
    task = start_reporter()
    await eventually(lambda: len(scheduler.servicer.reports) >= 1)
    await reporter.stop(task)
    assert scheduler.servicer.callers == ["node_agent"]


async def test_a_user_token_is_refused_and_retried(
    scheduler: SchedulerProcess, start_reporter: Callable[..., asyncio.Task[None]]
) -> None:
    users = TokenAuthority(internal_secret="x" * 40, user_secret="y" * 40)
    user_token = users.issue_user("system", "admin", "")
    task = start_reporter(credentials=lambda: (("authorization", f"Bearer {user_token}"),))
    await asyncio.sleep(0.5)
    await reporter.stop(task)
    assert scheduler.servicer.reports == [] and scheduler.servicer.callers == []


async def test_cadence_follows_the_answered_interval(
    scheduler: SchedulerProcess, start_reporter: Callable[..., asyncio.Task[None]]
) -> None:
    scheduler.servicer.intervals = [1, 3, 2]
    scheduler.servicer.interval = 1
    asked: Sleeps = []
    task = start_reporter(sleep=fast_sleep(asked))
    await eventually(lambda: len(scheduler.servicer.reports) >= 5)
    await reporter.stop(task)
    assert asked[:4] == [1.0, 3.0, 2.0, 1.0]
    at = [r.at for r in scheduler.servicer.reports]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    # a tenth of 1, 3, 2 s: the longer answer gives the longer gap
    assert gaps[1] > gaps[0] and gaps[1] > gaps[2] > gaps[0]


async def test_cadence_in_real_seconds(
    scheduler: SchedulerProcess, start_reporter: Callable[..., asyncio.Task[None]]
) -> None:
    scheduler.servicer.interval = 1
    task = start_reporter(sleep=asyncio.sleep)
    await eventually(lambda: len(scheduler.servicer.reports) >= 3, within=4.0)
    await reporter.stop(task)
    at = [r.at for r in scheduler.servicer.reports]
    assert all(0.9 <= b - a <= 1.5 for a, b in itertools.pairwise(at))


async def test_a_dropped_stream_is_reopened_with_facts_again(
    scheduler: SchedulerProcess, start_reporter: Callable[..., asyncio.Task[None]]
) -> None:
    scheduler.servicer.drop_after = 2
    task = start_reporter()
    await eventually(lambda: len(scheduler.servicer.of_stream(2)) >= 2)
    await reporter.stop(task)
    first_stream = scheduler.servicer.of_stream(1)
    assert len(first_stream) == 2
    second = scheduler.servicer.of_stream(2)
    assert second[0].HasField("facts") and not second[1].HasField("facts")


async def test_reports_resume_after_the_scheduler_restarts_on_its_port(
    scheduler: SchedulerProcess, start_reporter: Callable[..., asyncio.Task[None]]
) -> None:
    task = start_reporter()
    await eventually(lambda: len(scheduler.servicer.reports) >= 2)
    port = scheduler.port
    await scheduler.stop()
    await asyncio.sleep(0.5)  # a few refused reconnects
    before = len(scheduler.servicer.reports)
    await scheduler.start()
    assert scheduler.port == port
    await eventually(
        lambda: scheduler.servicer.streams >= 2 and len(scheduler.servicer.reports) >= before + 2
    )
    await reporter.stop(task)
    latest = scheduler.servicer.of_stream(scheduler.servicer.streams)
    assert latest[0].HasField("facts") and latest[0].facts.node == "node-a"


async def test_reports_resume_at_once_after_a_long_scheduler_outage(
    scheduler: SchedulerProcess, start_reporter: Callable[..., asyncio.Task[None]]
) -> None:
    scheduler.servicer.interval = 100  # 10 s between reports: the loss is seen on the stream
    task = start_reporter()
    await eventually(lambda: len(scheduler.servicer.reports) >= 1)
    await scheduler.stop()
    # Long enough for backoffs that grow with each failure to reach seconds.
    await asyncio.sleep(2.0)
    await scheduler.start()
    back = asyncio.get_running_loop().time()
    await eventually(lambda: scheduler.servicer.streams >= 2)
    assert asyncio.get_running_loop().time() - back < 0.5
    await reporter.stop(task)


async def test_a_silent_scheduler_is_left_for_a_new_stream(
    scheduler: SchedulerProcess, start_reporter: Callable[..., asyncio.Task[None]]
) -> None:
    scheduler.servicer.silent_streams = 1
    task = start_reporter(answer_timeout=0.3)
    await eventually(lambda: len(scheduler.servicer.of_stream(2)) >= 2)
    await reporter.stop(task)
    assert len(scheduler.servicer.of_stream(1)) == 1  # one unanswered report, then a new stream
    assert scheduler.servicer.of_stream(2)[0].HasField("facts")


async def test_host_readers_sample_this_machine(tmp_path: Path) -> None:
    facts.instances_dir(tmp_path).mkdir()
    sample = facts.read_capacity(tmp_path, [])
    assert sample.cpus_total >= 1 and sample.cpus_used == 0
    assert 0 < sample.memory_free_mib <= sample.memory_total_mib
    assert sample.disk_free_gib >= 0 and sample.load_1m >= 0
    assert sample.load_5m >= 0 and sample.load_15m >= 0
    assert sample.instance_uuids == () and sample.instances_active == 0
    assert facts.read_virt_type("qemu") == "qemu"
    assert facts.read_virt_type(None) in ("kvm", "qemu")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_node_agent_process_reports_and_stops_on_sigterm(
    scheduler: SchedulerProcess, qemu_tmp: Path, etcd: str
) -> None:
    """`python -m services.node_agent` with its flags: it serves health and
    its contract, the facts name the node, advertise the listen address and
    carry libvirt's version, and the stream is signed with the state
    folder's key."""
    tmp_path = qemu_tmp
    scheduler.servicer.authority = service_authority(tmp_path, Transport())
    listen = f"127.0.0.1:{_free_port()}"
    env = {
        **os.environ,
        "SFMESH_SCHEDULER_ADDRESS": scheduler.address,
        "SFMESH_NODE_NAME": "n7",
        "SFMESH_ETCD": etcd,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.node_agent",
        "--state-dir",
        str(tmp_path),
        "--listen",
        listen,
        "--virt-type",
        "qemu",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await eventually(lambda: len(scheduler.servicer.reports) >= 1, within=15.0)
        async with grpc.aio.insecure_channel(listen) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5.0)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            power = channel.unary_unary("/sfmesh.v1.NodeAgentService/ChangePower")
            token = scheduler.servicer.authority.issue_internal("api")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await power(b"", timeout=5.0, metadata=(("authorization", f"Bearer {token}"),))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        child.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(child.wait(), 30.0)
    first = scheduler.servicer.reports[0].request
    assert (first.facts.node, first.facts.address, first.facts.kvm) == ("n7", listen, False)
    assert first.facts.libvirt_version.count(".") == 2
    assert first.memory_total_mib > 0 and first.cpus_total >= 1
    assert scheduler.servicer.callers == ["node_agent"]
    assert code == 0
    assert (tmp_path / "instances").is_dir()


async def test_the_stream_moves_to_a_new_leader_at_once(
    scheduler: SchedulerProcess,
    authority: TokenAuthority,
    store: Store,
    start_reporter: Callable[..., asyncio.Task[None]],
) -> None:
    """The leader key names a scheduler nothing listens at (a leader just
    killed); the stream waits for it until the key names another, then
    opens there at once; and moves again when the key changes again."""
    other = SchedulerProcess(FakeScheduler(authority))
    await other.start()
    dead = f"127.0.0.1:{_free_port()}"
    try:
        assert await store.commit([Put(leader_key(SCHEDULER), dead.encode())])
        task = start_reporter()
        await asyncio.sleep(0.5)
        assert scheduler.servicer.streams == other.servicer.streams == 0
        assert await store.commit([Put(leader_key(SCHEDULER), other.address.encode())])
        moved = asyncio.get_running_loop().time()
        await eventually(lambda: len(other.servicer.reports) >= 1)
        assert asyncio.get_running_loop().time() - moved < 0.5
        assert await store.commit([Put(leader_key(SCHEDULER), scheduler.address.encode())])
        moved = asyncio.get_running_loop().time()
        await eventually(lambda: len(scheduler.servicer.reports) >= 1)
        assert asyncio.get_running_loop().time() - moved < 0.5
        await reporter.stop(task)
    finally:
        await other.stop()
        await store.commit([Delete(leader_key(SCHEDULER))])
