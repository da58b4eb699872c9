"""The etcd client's metrics (`services/common/etcd_metrics.py`) move with
the requests a real etcd answers."""

from __future__ import annotations

import socket
import uuid

from services.common.store import Put, Store
from tests.metric_samples import sample

DURATION = "sfmesh_etcd_request_duration_seconds_count"


def requests(operation: str) -> float:
    return sample(DURATION, operation=operation)


async def test_each_operation_is_timed(etcd: str) -> None:
    prefix = f"/sfmesh-test/{uuid.uuid4()}/".encode()
    operations = ("get", "range", "txn", "watch-open", "lease-grant", "lease-revoke")
    before = {operation: requests(operation) for operation in operations}
    store = Store(etcd)
    try:
        async with store.lease(10) as kept:
            assert await store.commit([Put(prefix + b"a", b"1", 0, lease=kept.id)])
        assert await store.get(prefix + b"a") is None
        snapshot = await store.snapshot(prefix)
        watch = store.watch_prefix(prefix, start_revision=snapshot.revision + 1)
        assert await store.commit([Put(prefix + b"b", b"2")])
        assert (await anext(watch)).key == prefix + b"b"
        await watch.aclose()
    finally:
        await store.close()
    for operation in operations:
        assert requests(operation) > before[operation], operation


async def test_a_read_sent_again_to_the_next_member_is_a_retry(etcd: str) -> None:
    with socket.socket() as closed:  # a port nothing listens at: a dead member
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    before, failed = sample("sfmesh_etcd_retries_total", operation="get"), requests("get")
    store = Store([dead, etcd])
    try:
        assert await store.get(f"/sfmesh-test/{uuid.uuid4()}".encode()) is None
    finally:
        await store.close()
    assert sample("sfmesh_etcd_retries_total", operation="get") == before + 1
    assert requests("get") == failed + 2  # the refused attempt is timed too
