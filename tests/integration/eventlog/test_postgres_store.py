"""Integration tests of what only the PostgreSQL store does, against a real
cluster: several replicas on one database, and the server restarted under them.
What both stores do is test_stores.py's."""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sfmesh.v1 import eventlog_service_pb2

from devmesh.postgres import Postgres
from services.common import errors
from services.eventlog.postgres_store import POOL_TIMEOUT, PostgresEventStore
from tests.event_records import rec

Batch = list[eventlog_service_pb2.EventRecord]


@pytest.fixture
def database(postgres: Postgres) -> str:
    """A new, empty database's URL."""
    return postgres.create_database(f"events_{uuid.uuid4().hex}")


@pytest.fixture
def replicas(database: str) -> Iterator[list[PostgresEventStore]]:
    """Two stores on one database, as two eventlog replicas hold them."""
    opened = [PostgresEventStore(database), PostgresEventStore(database)]
    yield opened
    for store in opened:
        store.close()


def test_replicas_create_the_schema_together(database: str) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        stores = list(pool.map(lambda _: PostgresEventStore(database), range(4)))
    for store in stores:
        store.close()


def test_every_connection_commits_synchronously(postgres: Postgres, database: str) -> None:
    with postgres.connect(database) as conn:
        conn.execute(f'ALTER DATABASE "{database.rsplit("/", 1)[1]}" SET synchronous_commit = off')
    store = PostgresEventStore(database)
    try:
        with store._pool.connection() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        store.close()


def _poll(store: PostgresEventStore, until: threading.Event) -> list[tuple[int, str]]:
    """What a watch sees: `after` from the last cursor it saw, until `until` is
    set and a last look finds nothing new. Every cursor must exceed the last."""
    seen: list[tuple[int, str]] = []
    cursor = 0
    while True:
        done = until.is_set()
        found = store.after("instance", "u1", cursor=cursor, limit=1000)
        for stored in found:
            assert stored.cursor > cursor, "a watch went backwards"
            cursor = stored.cursor
            seen.append((cursor, stored.event.message))
        if done and not found:
            return seen


def test_replicas_appending_at_once_lose_and_double_nothing(
    replicas: list[PostgresEventStore],
) -> None:
    """Each replica appends its own events and a replay of shared ones, in
    step; a watcher polling a third view misses no committed cursor."""
    batches, size = 100, 20

    def append_all(store: PostgresEventStore, name: str) -> None:
        for b in range(batches):
            own = [rec(f"{name}-{b}-{n}", b * size + n + 1) for n in range(size)]
            store.append(name, [*own, rec(f"shared-{b}", b + 1)])

    finished = threading.Event()
    with ThreadPoolExecutor(max_workers=3) as pool:
        watcher = pool.submit(_poll, replicas[0], finished)
        writers = [
            pool.submit(append_all, store, name) for store, name in zip(replicas, "ab", strict=True)
        ]
        for writer in writers:
            writer.result()
        finished.set()
        seen = watcher.result()
    expected = {f"{name}-{b}-{n}" for name in "ab" for b in range(batches) for n in range(size)}
    expected |= {f"shared-{b}" for b in range(batches)}
    messages = [message for _, message in seen]
    assert len(messages) == len(expected)
    assert set(messages) == expected
    stored = replicas[1].newest("instance", "u1", limit=-1)
    assert sorted(s.event.message for s in stored) == sorted(expected)
    assert replicas[1].last_cursor() == max(cursor for cursor, _ in seen)
    assert [replicas[1].committed_sequence(name) for name in "ab"] == [batches * size] * 2


def _replayed(append: Callable[[], int], failures: list[Exception]) -> int:
    """`append` until it succeeds, as an emitter replays an unacknowledged batch."""
    while True:
        try:
            return append()
        except Exception as exc:
            failures.append(exc)
            time.sleep(0.05)


def test_a_restart_mid_burst_loses_and_doubles_nothing(
    postgres: Postgres, replicas: list[PostgresEventStore]
) -> None:
    batches, size = 150, 40
    done = [0, 0]
    failures: list[Exception] = []

    def produce(index: int) -> None:
        store = replicas[index]
        for b in range(batches):
            batch = [rec(f"{index}-{b}-{n}", b * size + n + 1) for n in range(size)]
            _replayed(functools.partial(store.append, f"p{index}", batch), failures)
            done[index] = b + 1
            time.sleep(0.005)

    with ThreadPoolExecutor(max_workers=2) as pool:
        producers = [pool.submit(produce, index) for index in range(2)]
        for mode, share in (("fast", 0.2), ("immediate", 0.6)):
            while min(done) < batches * share:
                time.sleep(0.01)
            postgres.stop(mode)
            # Down until an append has failed (the pool gives up after its
            # timeout), so the outage is seen whenever the restart falls.
            deadline = time.monotonic() + POOL_TIMEOUT + 10
            while not failures and time.monotonic() < deadline:
                time.sleep(0.05)
            postgres.start()
        assert min(done) < batches, "the restarts must land in the burst"
        for producer in producers:
            producer.result()
    assert failures, "a restart under appends fails some of them"
    assert all(isinstance(failure, errors.Unavailable) for failure in failures), failures
    stored = replicas[0].newest("instance", "u1", limit=-1)
    assert len(stored) == 2 * batches * size
    assert len({s.event.message for s in stored}) == 2 * batches * size
    assert [replicas[1].committed_sequence(f"p{i}") for i in range(2)] == [batches * size] * 2


def test_watchers_are_woken_by_other_replicas_commits(
    replicas: list[PostgresEventStore],
) -> None:
    woken = threading.Event()
    replicas[0].watch_commits(woken.set)
    assert woken.wait(5), "listening starts with a wake, for commits it may have missed"
    woken.clear()
    replicas[0].append("p", [rec("own")])
    assert not woken.wait(0.5), "its own commits are announced by its writer"
    replicas[1].append("q", [rec("other")])
    assert woken.wait(1), "another replica's commit wakes it"
