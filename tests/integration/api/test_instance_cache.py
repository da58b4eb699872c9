"""services/api/instances/cache.py against a real etcd: what the copy answers,
and that it says UNSURE (so the api reads etcd) whenever it might be behind
what the caller could know."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sfmesh.v1 import records_pb2

from devmesh.mesh import Ports, start_etcd
from services.api.instances.cache import RECORD_BYTES, UNSURE, InstanceCache, Unsure
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.store import Store


def record(name: str = "a") -> records_pb2.InstanceRecord:
    found = records_pb2.InstanceRecord()
    found.instance.uuid = str(uuid.uuid4())
    found.instance.name = name
    found.instance.namespace = "cache-test"
    return found


@contextlib.asynccontextmanager
async def running(cache: InstanceCache) -> AsyncIterator[InstanceCache]:
    task = asyncio.create_task(cache.run())
    try:
        yield cache
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s"
        await asyncio.sleep(0.01)


def names(found: StoredInstance | Unsure) -> str:
    assert isinstance(found, StoredInstance), found
    return found.record.instance.name


@pytest.fixture
async def stores(etcd: str) -> AsyncIterator[tuple[Store, Store]]:
    """The api's store, and another process's (a node agent's, say)."""
    ours, theirs = Store(etcd), Store(etcd)
    yield ours, theirs
    await ours.close()
    await theirs.close()


async def test_unsure_until_its_first_snapshot(stores: tuple[Store, Store]) -> None:
    ours, _ = stores
    assert InstanceCache(ours).get(str(uuid.uuid4())) is UNSURE


async def test_answers_what_others_write_and_sends_misses_to_etcd(
    stores: tuple[Store, Store],
) -> None:
    """A record written elsewhere is answered once the watch brings it; one
    the copy does not hold (not there yet, or removed) is UNSURE: another
    api replica may have just created it, and etcd says."""
    ours, theirs = stores
    written = record("first")
    async with running(InstanceCache(ours)) as cache:
        assert await InstanceStore(theirs).create(written)
        assert cache.get(str(uuid.uuid4())) is UNSURE
        await eventually(lambda: cache.get(written.instance.uuid) is not UNSURE)
        assert names(cache.get(written.instance.uuid)) == "first"
        assert cache.get(str(uuid.uuid4())) is UNSURE  # live, but it holds none
        stored = await InstanceStore(theirs).get(written.instance.uuid)
        assert stored is not None
        assert await InstanceStore(theirs).remove(stored)
        await eventually(lambda: cache.get(written.instance.uuid) is UNSURE)


async def test_reads_its_own_writes_at_once(stores: tuple[Store, Store]) -> None:
    """Right after this api's write, the copy answers the new record or
    UNSURE: never the record as it was."""
    ours, _ = stores
    instances = InstanceStore(ours)
    written = record("v0")
    assert await instances.create(written)
    served = 0
    async with running(InstanceCache(ours)) as cache:
        await eventually(lambda: cache.get(written.instance.uuid) is not UNSURE)
        for version in range(1, 60):
            stored = await instances.get(written.instance.uuid)
            assert stored is not None

            def rename(changed: records_pb2.InstanceRecord, version: int = version) -> None:
                changed.instance.name = f"v{version}"

            await instances.update(stored, rename)
            found = cache.get(written.instance.uuid)
            if found is not UNSURE:
                assert names(found) == f"v{version}"
                served += 1
            await asyncio.sleep(0.01)
    assert served > 0  # the copy does answer between writes


async def test_never_older_than_what_this_api_read_from_etcd(
    stores: tuple[Store, Store],
) -> None:
    """A record this api read from etcd (a fallback, a listing) is the oldest
    the copy may answer afterwards, though another process wrote it."""
    ours, theirs = stores
    written = record("v0")
    assert await InstanceStore(theirs).create(written)
    async with running(InstanceCache(ours)) as cache:
        await eventually(lambda: cache.get(written.instance.uuid) is not UNSURE)
        for version in range(1, 40):
            stored = await InstanceStore(theirs).get(written.instance.uuid)
            assert stored is not None

            def rename(changed: records_pb2.InstanceRecord, version: int = version) -> None:
                changed.instance.name = f"v{version}"

            await InstanceStore(theirs).update(stored, rename)
            seen = await InstanceStore(ours).get(written.instance.uuid)
            assert seen is not None and seen.record.instance.name == f"v{version}"
            found = cache.get(written.instance.uuid)
            assert found is UNSURE or names(found) == f"v{version}"


async def test_large_records_are_left_to_etcd(stores: tuple[Store, Store]) -> None:
    ours, theirs = stores
    large = record("large")
    large.instance.user_data = "x" * (RECORD_BYTES + 1)
    small = record("small")
    async with running(InstanceCache(ours)) as cache:
        assert await InstanceStore(theirs).create(large)
        assert await InstanceStore(theirs).create(small)
        await eventually(lambda: cache.get(small.instance.uuid) not in (None, UNSURE))
        assert cache.get(large.instance.uuid) is UNSURE


async def test_stops_answering_while_etcd_is_frozen(tmp_path: Path) -> None:
    """A frozen etcd answers no progress request: within MAX_AGE and a
    little, the copy says UNSURE; once etcd is back, it answers again."""
    ports = Ports.free()
    child = start_etcd(tmp_path / "etcd", ports, sink=sys.stderr)
    assert child.process is not None
    store = Store(f"127.0.0.1:{ports.etcd_client}")
    written = record("kept")
    try:
        assert await InstanceStore(store).create(written)
        async with running(InstanceCache(store)) as cache:
            await eventually(lambda: cache.get(written.instance.uuid) is not UNSURE)
            os.kill(child.process.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            try:
                await eventually(lambda: cache.get(written.instance.uuid) is UNSURE, within=3)
                assert time.monotonic() - frozen_at < 1.5
            finally:
                os.kill(child.process.pid, signal.SIGCONT)
            await eventually(lambda: cache.get(written.instance.uuid) is not UNSURE, within=10)
            assert names(cache.get(written.instance.uuid)) == "kept"
    finally:
        await store.close()
        child.stop()


async def test_a_cancel_always_ends_it(stores: tuple[Store, Store]) -> None:
    """Cancelled at any point of its watch (progress answers arrive every
    PROGRESS_EVERY), the copy's task ends: a cancel is never swallowed."""
    ours, _ = stores
    for attempt in range(20):
        task = asyncio.create_task(InstanceCache(ours, every=0.005).run())
        await asyncio.sleep(0.05 + attempt * 0.007)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert done, f"attempt {attempt}: the cancelled copy still runs"
