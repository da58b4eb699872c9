"""Two eventlog replicas on one PostgreSQL database (issue 14): a burst of
10,000 events from 3 producers while PostgreSQL restarts and each replica is
killed and restarted in turn; all 10,000 are stored exactly once. And a watch
on one replica sees events written through the other at once (NOTIFY).

Each replica runs as a host of its own runs it (the launcher, a host config
with only the eventlog role, the database's URL as its `database`); the
producers are real emitters with spools, each pointed at one replica, so a
producer whose replica or database is down spools and replays."""

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
from services.common.events import EventEmitter
from services.common.secrets import load_or_create_secret
from services.common.transport import Transport
from tests.e2e.producers import credentials, produce

PRODUCERS = 3
REPLICAS = 2
EVENTS = 10_000
PAUSE_EVERY = 2
"""Producers pause 10 ms every this many events: a burst of about 17 s."""


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
                "eventlog": {"listen": f"127.0.0.1:{free_port()}", "database": database},
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
