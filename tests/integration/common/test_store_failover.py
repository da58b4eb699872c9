"""services/common/store.py against a real three-member etcd cluster on
loopback: the member the store talks to is killed (SIGKILL) under reads,
compare-and-swap writes, a watch and a lease, and the store carries on
through the others, losing and doubling nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aetcd import rpc
from google.protobuf.wrappers_pb2 import Int64Value

from devmesh.mesh import EtcdMemberRun
from services.common import errors
from services.common.etcd_clients import EtcdClients
from services.common.store import Change, Put, Store
from tests.meshes import started_etcd_cluster

FAILOVER_WITHIN = 5.0
"""Seconds the store may take to answer again once its member is killed."""
COUNTER = b"/sfmesh-test/failover/counter"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[EtcdMemberRun]]:
    with started_etcd_cluster(tmp_path, 3) as members:
        yield members


def kill_member_in_use(store: Store, members: list[EtcdMemberRun]) -> EtcdMemberRun:
    """SIGKILL the member `store` talks to now."""
    endpoint = store._etcd.endpoints[store._etcd.current()[0]]
    (victim,) = [member for member in members if member.client == endpoint]
    victim.child.stop(signal.SIGKILL)
    return victim


async def increment(store: Store) -> None:
    item = await store.get(COUNTER)
    assert item is not None
    current = Int64Value.FromString(item.value)

    def add_one(record: Int64Value) -> None:
        record.value += 1

    await store.update(COUNTER, current, item.mod_revision, add_one, lambda: errors.NotFound("x"))


async def test_reads_and_writes_answer_again_within_seconds_of_a_kill(
    cluster: list[EtcdMemberRun],
) -> None:
    store = Store([member.client for member in cluster])
    try:
        assert await store.commit([Put(b"/sfmesh-test/failover/a", b"1", 0)])
        kill_member_in_use(store, cluster)
        started = time.monotonic()
        item = await store.get(b"/sfmesh-test/failover/a")
        assert item is not None and item.value == b"1"
        write = Put(b"/sfmesh-test/failover/a", b"2", item.mod_revision)
        assert await store.commit([write])
        assert time.monotonic() - started < FAILOVER_WITHIN
        assert not await store.commit([write])  # a stale compare still fails
    finally:
        await store.close()


async def test_no_increment_is_lost_or_doubled_across_a_kill(
    cluster: list[EtcdMemberRun],
) -> None:
    store = Store([member.client for member in cluster])
    try:
        assert await store.commit([Put(COUNTER, Int64Value(value=0).SerializeToString(), 0)])
        acknowledged = 0
        refused: list[BaseException] = []
        under_way = asyncio.Event()

        async def one() -> None:
            nonlocal acknowledged
            try:
                await increment(store)
                acknowledged += 1
                if acknowledged == 20:
                    under_way.set()
            except errors.Unavailable as exc:
                refused.append(exc)

        tasks = [asyncio.create_task(one()) for _ in range(200)]
        await under_way.wait()
        kill_member_in_use(store, cluster)
        await asyncio.gather(*tasks)
        item = await store.get(COUNTER)
        assert item is not None
        assert refused == []
        assert Int64Value.FromString(item.value).value == acknowledged == 200
    finally:
        await store.close()


async def test_a_watch_delivers_every_change_across_a_kill(
    cluster: list[EtcdMemberRun],
) -> None:
    endpoints = [member.client for member in cluster]
    watcher, writer = Store(endpoints), Store(endpoints[::-1])
    prefix = b"/sfmesh-test/failover/watched/"
    try:
        start = await watcher.snapshot(prefix)
        seen: list[Change] = []
        under_way = asyncio.Event()

        async def watch() -> None:
            async for change in watcher.watch_prefix(prefix, start_revision=start.revision + 1):
                seen.append(change)
                if len(seen) == 20:
                    under_way.set()
                if len(seen) == 100:
                    return

        watching = asyncio.create_task(watch())
        for n in range(100):
            assert await writer.commit([Put(prefix + b"%03d" % n, b"%d" % n, 0)])
            if n == 30:
                await under_way.wait()
                kill_member_in_use(watcher, cluster)
        await asyncio.wait_for(watching, 30)
        assert [change.value for change in seen] == [b"%d" % n for n in range(100)]
    finally:
        await watcher.close()
        await writer.close()


async def test_a_lease_is_kept_alive_across_a_kill(cluster: list[EtcdMemberRun]) -> None:
    store = Store([member.client for member in cluster])
    held = b"/sfmesh-test/failover/held"
    try:
        async with store.lease(3) as kept:
            assert await store.commit([Put(held, b"mine", 0, lease=kept.id)])
            kill_member_in_use(store, cluster)
            await asyncio.sleep(8)  # more than twice the TTL
            item = await store.get(held)
            assert item is not None and item.value == b"mine"
            assert not kept.lost.is_set()
        assert await store.get(held) is None  # revoked on leaving
    finally:
        await store.close()


async def test_a_write_whose_answer_was_lost_after_it_applied_counts_once(
    etcd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule's other branch, made certain: the transaction applies, its
    answer is lost, and `update` neither reports a conflict nor applies its
    change a second time."""
    port = etcd.rpartition(":")[2]
    store = Store([etcd, f"localhost:{port}"])  # one member under two names
    counter = b"/sfmesh-test/failover/lost-answer"
    real_once = EtcdClients.once
    lost: list[int] = []

    async def losing_once(self: EtcdClients, send: Any, *, operation: Any) -> Any:
        answer = await real_once(self, send, operation=operation)
        if isinstance(answer, rpc.TxnResponse) and answer.succeeded and not lost:
            lost.append(answer.header.revision)
            raise errors.Unavailable("the answer was lost", reason="ETCD_UNAVAILABLE")
        return answer

    try:
        assert await store.commit([Put(counter, Int64Value(value=0).SerializeToString(), 0)])
        monkeypatch.setattr(EtcdClients, "once", losing_once)
        item = await store.get(counter)
        assert item is not None

        def add_one(record: Int64Value) -> None:
            record.value += 1

        current = Int64Value.FromString(item.value)
        await store.update(
            counter, current, item.mod_revision, add_one, lambda: errors.NotFound("")
        )
        after = await store.get(counter)
        assert lost and after is not None and after.mod_revision == lost[0]
        assert Int64Value.FromString(after.value).value == 1
    finally:
        await store.close()
