"""Two eventlog replicas on one PostgreSQL database (issue 14): a burst of
10,000 events from 3 producers while PostgreSQL restarts and each replica is
killed and restarted in turn; all 10,000 are stored exactly once. A watch
on one replica sees events written through the other at once (NOTIFY). And
an emitter and the api's reader, each given both replicas, fail over when
the replica they use is killed: the events keep arriving, each stored once,
and the reader lists and watches them through the other.

Each replica runs as a host of its own runs it (the launcher, a host config
with only the eventlog role, the database's URL as its `database`); the
burst's producers are real emitters with spools, each pointed at one
replica, so a producer whose replica or database is down spools and
replays."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from sfmesh.v1 import event_pb2, eventlog_service_pb2, eventlog_service_pb2_grpc

from devmesh.postgres import Postgres, free_port
from launcher.config import parse_config
from launcher.host import Host
from services.api.clients.events import Events
from services.common.events import EventEmitter
from services.common.secrets import load_or_create_secret
from services.common.transport import Transport
from tests.e2e.producers import credentials, produce

PRODUCERS = 3
REPLICAS = 2
EVENTS = 10_000
PAUSE_EVERY = 2
"""Producers pause 10 ms every this many events: a burst of about 17 s."""
FAILOVER_LIMIT = 3.0
"""Seconds from a replica's kill until the emitter's events are stored again,
through the other."""
SETTLE = 6.0
"""Seconds for a channel to connect to a replica started after it (the
emitter's reconnect backoff is at most 5 s)."""


@pytest.fixture
def database(postgres: Postgres) -> str:
    """A new, empty database's URL."""
    return postgres.create_database(f"events_{uuid.uuid4().hex}")


@pytest.fixture
def replicas(tmp_path: Path, database: str) -> Iterator[list[Host]]:
    """REPLICAS eventlog hosts on free ports, one service key (in `tmp_path`),
    one database."""
    load_or_create_secret(tmp_path / "service.key")
    hosts = []
    try:
        for n in range(REPLICAS):
            state = tmp_path / f"replica-{n}"
            state.mkdir()
            shutil.copy(tmp_path / "service.key", state / "service.key")
            document = {
                "host": {"name": f"eventlog-{n}", "roles": ["eventlog"], "state_dir": str(state)},
                "eventlog": {
                    "listen": f"127.0.0.1:{free_port()}",
                    "metrics_listen": "",  # two on one machine: no default port
                    "database": database,
                },
            }
            host = Host(parse_config(document, hostname=f"eventlog-{n}"), sink=sys.stderr)
            hosts.append(host)
            host.start()
        yield hosts
    finally:
        for host in hosts:
            host.stop()


def address(host: Host) -> str:
    """A replica's gRPC address."""
    return str(host.config.listen("eventlog").local())


def stored_in_database(database: str, subject: str) -> int:
    """How many of the subject's events the database holds; 0 while it is down."""
    try:
        with psycopg.connect(database, connect_timeout=1) as conn:
            row = conn.execute(
                "SELECT count(*) FROM events WHERE object_uuid = %s", (subject,)
            ).fetchone()
    except psycopg.OperationalError:
        return 0
    return int(row[0]) if row else 0


def wait_for_stored(database: str, subject: str, at_least: int) -> int:
    """Wait until the database holds `at_least` of the subject's events."""
    deadline = time.monotonic() + 60
    while (stored := stored_in_database(database, subject)) < at_least:
        assert time.monotonic() < deadline, f"stuck at {stored} events"
        time.sleep(0.05)
    return stored


async def listed(host: Host, folder: Path, subject: str) -> list[str]:
    """The messages of the subject's events, as one replica lists them."""
    async with grpc.aio.insecure_channel(address(host)) as channel:
        stub = eventlog_service_pb2_grpc.EventLogServiceStub(channel)
        reply = await stub.List(
            eventlog_service_pb2.ListRequest(object_type="test", object_uuid=subject, limit=-1),
            metadata=credentials(folder).metadata(),
            timeout=30,
        )
    return [event.message for event in reply.events]


def test_restarts_of_postgres_and_each_replica_in_a_burst_lose_and_double_nothing(
    postgres: Postgres, database: str, replicas: list[Host], tmp_path: Path
) -> None:
    subject = str(uuid.uuid4())
    context = multiprocessing.get_context("spawn")
    producers = [
        context.Process(
            target=produce,
            args=(
                address(replicas[index % REPLICAS]),
                str(tmp_path),
                str(tmp_path / f"spool-{index}"),
                subject,
                EVENTS // PRODUCERS + (1 if index < EVENTS % PRODUCERS else 0),
                index,
                PAUSE_EVERY,
            ),
        )
        for index in range(PRODUCERS)
    ]
    for producer in producers:
        producer.start()
    stored = wait_for_stored(database, subject, EVENTS // 10)
    postgres.restart("fast")
    for replica in replicas:
        stored = wait_for_stored(database, subject, stored + EVENTS // 20)
        replica.stop_role("eventlog", signal.SIGKILL)
        time.sleep(0.5)
        replica.start_role("eventlog")
    assert stored < EVENTS, "every restart must land in the burst"
    for producer in producers:
        producer.join(180)
        assert producer.exitcode == 0
    for replica in replicas:
        messages = asyncio.run(listed(replica, tmp_path, subject))
        assert len(messages) == EVENTS
        assert len(set(messages)) == EVENTS


async def test_a_watch_on_one_replica_sees_another_replicas_events_at_once(
    replicas: list[Host], tmp_path: Path
) -> None:
    subject = str(uuid.uuid4())
    emitter = EventEmitter(
        address=address(replicas[0]),
        producer_id="e2e-watch",
        spool_dir=tmp_path / "spool",
        fqdn="e2e",
        credentials=credentials(tmp_path).metadata,
        transport=Transport(),
    )
    await emitter.start()
    try:
        async with grpc.aio.insecure_channel(address(replicas[1])) as channel:
            stub = eventlog_service_pb2_grpc.EventLogServiceStub(channel)
            watch = stub.Watch(
                eventlog_service_pb2.WatchRequest(object_type="test", object_uuid=subject),
                metadata=credentials(tmp_path).metadata(),
            )
            await asyncio.sleep(0.3)  # the watch is established
            latencies = []
            for number in range(5):
                sent = time.monotonic()
                emitter.emit("test", subject, event_pb2.EVENT_TYPE_AUDIT, f"live {number}")
                seen = await asyncio.wait_for(watch.read(), 5)
                latencies.append(time.monotonic() - sent)
                assert seen.event.message == f"live {number}"
            watch.cancel()
    finally:
        await emitter.close()
    # Without NOTIFY a watch looks again only every second.
    assert max(latencies) < 0.25, latencies


async def test_an_emitter_and_a_reader_given_both_replicas_fail_over_when_theirs_dies(
    replicas: list[Host], database: str, tmp_path: Path
) -> None:
    first, second = replicas
    both = f"{address(first)},{address(second)}"
    subject = str(uuid.uuid4())
    # Only the first serves as the stream and the watch open: they are there.
    second.stop_role("eventlog")
    emitter = EventEmitter(
        address=both,
        producer_id="e2e-failover",
        spool_dir=tmp_path / "spool",
        fqdn="e2e",
        credentials=credentials(tmp_path).metadata,
        transport=Transport(),
    )
    reader = Events(emitter, both, credentials(tmp_path), transport=Transport())
    await emitter.start()
    watched: asyncio.Queue[str] = asyncio.Queue()

    async def watch() -> None:
        query = eventlog_service_pb2.WatchRequest(object_type="test", object_uuid=subject)
        async for item in reader.watch(query):
            watched.put_nowait(item.event.message)

    watching = asyncio.create_task(watch())
    emitted = 0

    async def emit(count: int) -> None:
        nonlocal emitted
        for _ in range(count):
            emitter.emit("test", subject, event_pb2.EVENT_TYPE_AUDIT, f"e{emitted}")
            emitted += 1
            await asyncio.sleep(0.005)

    try:
        await asyncio.sleep(0.3)  # the watch is established
        await emit(100)
        assert await emitter.flushed(timeout=10)
        await asyncio.to_thread(second.start_role, "eventlog")
        await asyncio.sleep(SETTLE)
        burst = asyncio.create_task(emit(400))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(first.stop_role, "eventlog", signal.SIGKILL)
        killed = time.monotonic()
        before = stored_in_database(database, subject)
        await asyncio.to_thread(wait_for_stored, database, subject, before + 1)
        failover = time.monotonic() - killed
        print(f"\nevents stored again {failover:.2f} s after the kill")
        assert failover < FAILOVER_LIMIT
        await burst
        assert await emitter.flushed(timeout=10)

        messages = [f"e{n}" for n in range(emitted)]
        assert stored_in_database(database, subject) == emitted == 500
        listed = await reader.newest(
            "test", subject, event_type=event_pb2.EVENT_TYPE_UNSPECIFIED, limit=-1
        )
        assert sorted(event.message for event in listed) == sorted(messages)
        seen = [await asyncio.wait_for(watched.get(), 10) for _ in messages]
        assert sorted(seen) == sorted(messages) and watched.empty()
    finally:
        watching.cancel()
        await reader.close()
        await emitter.close()
