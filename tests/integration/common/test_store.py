"""services/common/store.py against a real etcd: reads, paged listings and
compare-and-swap transactions."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from services.common import errors
from services.common.store import (
    PREFIX,
    REQUEST_BYTES,
    Change,
    Delete,
    Expect,
    Item,
    Member,
    Operation,
    Put,
    Store,
    key,
    kind_prefix,
)


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    connection = Store(etcd)
    yield connection
    await connection.close()


@pytest.fixture
def prefix() -> bytes:
    """A key prefix of this test's own, so tests never see each other's keys."""
    return f"/sfmesh-test/{uuid.uuid4()}/".encode()


async def listed(store: Store, prefix: bytes, page_size: int = 500) -> list[Item]:
    return [item async for item in store.list_prefix(prefix, page_size=page_size)]


def test_key_layout() -> None:
    assert key("instance", "abc") == b"/sfmesh/v1/instance/abc"
    assert kind_prefix("namespace") == b"/sfmesh/v1/namespace/"
    assert key("namespace", "x").startswith(kind_prefix("namespace"))
    assert PREFIX == "/sfmesh/v1/"


async def test_get_missing(store: Store, prefix: bytes) -> None:
    assert await store.get(prefix + b"nothing") is None


async def test_create_only_refuses_second_create(store: Store, prefix: bytes) -> None:
    k = prefix + b"one"
    assert await store.commit([Put(k, b"first", mod_revision=0)]) is True
    item = await store.get(k)
    assert item is not None
    assert (item.key, item.value) == (k, b"first")
    assert item.mod_revision > 0

    assert await store.commit([Put(k, b"second", mod_revision=0)]) is False
    again = await store.get(k)
    assert again == item


async def test_cas_replace(store: Store, prefix: bytes) -> None:
    k = prefix + b"cas"
    assert await store.commit([Put(k, b"v1", mod_revision=0)])
    v1 = await store.get(k)
    assert v1 is not None

    assert await store.commit([Put(k, b"v2", mod_revision=v1.mod_revision)]) is True
    v2 = await store.get(k)
    assert v2 is not None
    assert v2.value == b"v2"
    assert v2.mod_revision > v1.mod_revision

    # A writer still holding v1's revision loses, and changes nothing.
    assert await store.commit([Put(k, b"stale", mod_revision=v1.mod_revision)]) is False
    assert await store.get(k) == v2
    assert await store.commit([Delete(k, mod_revision=v1.mod_revision)]) is False
    assert await store.get(k) == v2


async def test_unconditional_put_and_delete(store: Store, prefix: bytes) -> None:
    k = prefix + b"free"
    assert await store.commit([Put(k, b"a")])
    assert await store.commit([Put(k, b"b")])
    item = await store.get(k)
    assert item is not None
    assert item.value == b"b"
    assert await store.commit([Delete(k)])
    assert await store.get(k) is None


async def test_cas_delete(store: Store, prefix: bytes) -> None:
    k = prefix + b"gone"
    assert await store.commit([Put(k, b"x", mod_revision=0)])
    item = await store.get(k)
    assert item is not None
    assert await store.commit([Delete(k, mod_revision=item.mod_revision)]) is True
    assert await store.get(k) is None


async def test_multi_op_transaction_is_atomic(store: Store, prefix: bytes) -> None:
    a, b, c = prefix + b"a", prefix + b"b", prefix + b"c"
    assert await store.commit([Put(a, b"a1", mod_revision=0), Put(b, b"b1", mod_revision=0)])
    item_a = await store.get(a)
    item_b = await store.get(b)
    assert item_a is not None
    assert item_b is not None
    # Both writes land at one revision.
    assert item_a.mod_revision == item_b.mod_revision

    # One failing expectation (c must be absent: it is; b must be at a stale
    # revision: it is not) refuses every operation.
    assert await store.commit([Put(b, b"b-moved", mod_revision=item_b.mod_revision)])
    refused: list[Operation] = [
        Put(c, b"c1", mod_revision=0),
        Delete(a, mod_revision=item_a.mod_revision),
        Put(b, b"b2", mod_revision=item_b.mod_revision),
    ]
    assert await store.commit(refused) is False
    assert await store.get(c) is None
    assert await store.get(a) == item_a
    moved = await store.get(b)
    assert moved is not None
    assert moved.value == b"b-moved"

    # With every expectation met, all of it applies.
    accepted: list[Operation] = [
        Put(c, b"c1", mod_revision=0),
        Delete(a, mod_revision=item_a.mod_revision),
        Put(b, b"b2", mod_revision=moved.mod_revision),
    ]
    assert await store.commit(accepted) is True
    assert await store.get(a) is None
    assert [(i.key, i.value) for i in await listed(store, prefix)] == [(b, b"b2"), (c, b"c1")]


async def test_expect_guards_a_write_with_a_key_it_leaves_alone(
    store: Store, prefix: bytes
) -> None:
    claim, fenced = prefix + b"claim", prefix + b"fenced"
    revision = await store.transact([Put(claim, b"me", mod_revision=0)])
    assert await store.commit([Expect(claim, revision), Put(fenced, b"1")])
    assert await store.get(claim) == Item(claim, b"me", revision)
    assert await store.commit([Put(claim, b"other")])
    assert await store.commit([Expect(claim, revision), Put(fenced, b"2")]) is False
    assert await store.commit([Expect(prefix + b"absent", 0), Put(fenced, b"3")])
    item = await store.get(fenced)
    assert item is not None and item.value == b"3"


async def test_a_granted_lease_takes_its_keys_when_it_runs_out(store: Store, prefix: bytes) -> None:
    lease = await store.grant(2)
    assert await store.commit([Put(prefix + b"short", b"x", lease=lease)])
    assert await store.get(prefix + b"short") is not None
    await asyncio.sleep(3.5)
    assert await store.get(prefix + b"short") is None


async def test_a_kept_lease_is_revoked_or_left_to_run_out(store: Store, prefix: bytes) -> None:
    async with store.lease(2) as kept:
        assert await store.commit([Put(prefix + b"revoked", b"x", lease=kept.id)])
    assert await store.get(prefix + b"revoked") is None  # at once
    async with store.lease(2, revoke=False) as kept:
        assert await store.commit([Put(prefix + b"left", b"x", lease=kept.id)])
    assert await store.get(prefix + b"left") is not None
    await asyncio.sleep(3.5)
    assert await store.get(prefix + b"left") is None


async def test_list_prefix_pages_in_key_order(store: Store, prefix: bytes) -> None:
    names = [f"k{n:02d}".encode() for n in range(10)]
    for name in reversed(names):
        assert await store.commit([Put(prefix + name, b"v-" + name, mod_revision=0)])
    # Neighbours that share the textual start but lie outside the prefix.
    outside = [prefix[:-1], prefix[:-1] + b"0", prefix[:-1] + b"~/k99"]
    for other in outside:
        assert await store.commit([Put(other, b"outside")])
    try:
        for page_size in (1, 3, 4, 5, 9, 10, 11, 500):
            items = await listed(store, prefix, page_size=page_size)
            assert [i.key for i in items] == [prefix + n for n in names], page_size
            assert [i.value for i in items] == [b"v-" + n for n in names]
            assert all(i.mod_revision > 0 for i in items)
        assert [i.key for i in await listed(store, prefix + b"k0", page_size=3)] == [
            prefix + n for n in names
        ]
        assert await listed(store, prefix + b"k1", page_size=3) == []
    finally:
        assert await store.commit([Delete(other) for other in outside])


async def test_list_prefix_empty(store: Store, prefix: bytes) -> None:
    assert await listed(store, prefix, page_size=3) == []


async def test_list_prefix_reads_one_revision(store: Store, prefix: bytes) -> None:
    """Writes made while paging do not show up in a listing already started."""
    for n in range(6):
        assert await store.commit([Put(prefix + f"k{n}".encode(), b"old")])
    seen = []
    async for item in store.list_prefix(prefix, page_size=2):
        seen.append((item.key, item.value))
        if len(seen) == 1:
            await store.commit(
                [
                    Put(prefix + b"k5", b"new"),
                    Put(prefix + b"k9", b"added"),
                    Delete(prefix + b"k3"),
                ]
            )
    assert seen == [(prefix + f"k{n}".encode(), b"old") for n in range(6)]
    after = [(i.key, i.value) for i in await listed(store, prefix)]
    assert (prefix + b"k5", b"new") in after
    assert (prefix + b"k9", b"added") in after
    assert prefix + b"k3" not in [k for k, _ in after]


async def test_empty_commit_succeeds(store: Store) -> None:
    assert await store.commit([]) is True


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_etcd_get_is_unavailable() -> None:
    store = Store(f"127.0.0.1:{closed_port()}", timeout=1)
    started = time.monotonic()
    try:
        with pytest.raises(errors.Unavailable) as caught:
            await store.get(b"/sfmesh-test/x")
    finally:
        await store.close()
    assert caught.value.reason == "ETCD_UNAVAILABLE"
    assert caught.value.retry_after == 1  # a 503 with Retry-After: 1 over REST
    assert caught.value.message.startswith("etcd is unavailable")
    assert time.monotonic() - started < 5


async def test_unreachable_etcd_commit_is_unavailable() -> None:
    store = Store(f"127.0.0.1:{closed_port()}", timeout=1)
    started = time.monotonic()
    try:
        with pytest.raises(errors.Unavailable):
            await store.commit([Put(b"/sfmesh-test/x", b"v", mod_revision=0)])
    finally:
        await store.close()
    assert time.monotonic() - started < 5


async def test_unreachable_etcd_list_is_unavailable() -> None:
    store = Store(f"127.0.0.1:{closed_port()}", timeout=1)
    started = time.monotonic()
    try:
        with pytest.raises(errors.Unavailable):
            await listed(store, b"/sfmesh-test/")
    finally:
        await store.close()
    assert time.monotonic() - started < 5


async def test_members_lists_the_urls_of_the_one_member(store: Store, etcd: str) -> None:
    (member,) = await store.members()
    assert isinstance(member, Member)
    assert member.client_urls == (f"http://{etcd}",)
    assert len(member.peer_urls) == 1
    assert member.peer_urls[0].startswith("http://127.0.0.1:")
    assert member.peer_urls != member.client_urls


async def test_unreachable_etcd_members_is_unavailable() -> None:
    store = Store(f"127.0.0.1:{closed_port()}", timeout=1)
    try:
        with pytest.raises(errors.Unavailable):
            await store.members()
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (0, "etcdserver: request is too large"),  # etcd's own framing tips it over
        (1, "more than its 1572864"),
        (2_000_000, "more than its 1572864"),  # past etcd's gRPC limit too
    ],
)
async def test_a_write_too_large_for_etcd_is_invalid_not_unavailable(
    store: Store, prefix: bytes, extra: int, said: str
) -> None:
    """Past etcd's request limit (1.5 MiB): retrying cannot help, so a 400,
    not a 503 with Retry-After."""
    at = prefix + b"big"
    with pytest.raises(errors.InvalidArgument) as refused:
        await store.commit([Put(at, b"x" * (REQUEST_BYTES - len(at) + extra))])
    assert refused.value.message.startswith("etcd refused the request: ")
    assert said in refused.value.message
    assert refused.value.reason == "ETCD_REQUEST_REFUSED"
    assert await store.get(at) is None


async def test_snapshot_then_watch_misses_and_repeats_nothing(store: Store, prefix: bytes) -> None:
    await store.commit([Put(prefix + b"a", b"1")])
    snapshot = await store.snapshot(prefix)
    assert [item.value for item in snapshot.items] == [b"1"]
    await store.commit([Put(prefix + b"a", b"2")])
    await store.commit([Put(prefix + b"b", b"3")])
    await store.commit([Delete(prefix + b"a")])
    changes = store.watch_prefix(prefix, start_revision=snapshot.revision + 1)
    seen = [await asyncio.wait_for(anext(changes), 5) for _ in range(3)]
    await changes.aclose()
    assert [(c.key, c.previous, c.value) for c in seen] == [
        (prefix + b"a", b"1", b"2"),
        (prefix + b"b", None, b"3"),
        (prefix + b"a", b"2", None),
    ]
    assert seen[0].mod_revision < seen[1].mod_revision < seen[2].mod_revision


async def test_watch_sees_live_changes(store: Store, prefix: bytes) -> None:
    snapshot = await store.snapshot(prefix)
    changes = store.watch_prefix(prefix, start_revision=snapshot.revision + 1)
    pending = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0.1)
    await store.commit([Put(prefix + b"live", b"x")])
    change = await asyncio.wait_for(pending, 5)
    await changes.aclose()
    assert (change.key, change.value, change.previous) == (prefix + b"live", b"x", None)


async def test_list_prefix_after_a_key(store: Store, prefix: bytes) -> None:
    await store.commit([Put(prefix + name, b"x") for name in (b"a", b"b", b"c")])
    assert [i.key for i in await listed_after(store, prefix, b"a")] == [
        prefix + b"b",
        prefix + b"c",
    ]
    assert await listed_after(store, prefix, b"c") == []


async def listed_after(store: Store, prefix: bytes, after: bytes) -> list[Item]:
    return [item async for item in store.list_prefix(prefix, page_size=1, after=after)]


async def test_concurrent_gets_each_answer_their_own_key(store: Store, prefix: bytes) -> None:
    """Gets asked together travel in one transaction (read_batch.py); each
    still answers its own key, absent ones None, repeated ones alike."""
    written = {prefix + f"k{n}".encode(): f"v{n}".encode() for n in range(40)}
    assert await store.commit([Put(k, v) for k, v in written.items()])
    asked = [*written, prefix + b"absent", *list(written)[:5]]
    found = await asyncio.gather(*(store.get(k) for k in asked))
    for k, item in zip(asked, found, strict=True):
        if k in written:
            assert item is not None
            assert (item.key, item.value) == (k, written[k])
        else:
            assert item is None


async def test_a_get_sees_every_write_acknowledged_before_it(store: Store, prefix: bytes) -> None:
    """Linearizable under batching: while other gets keep reads in flight, a
    get asked right after a write's acknowledgement reads that write, though
    other readers keep asking for the same key (a read of it already in
    flight may predate the write, and must not answer)."""
    k = prefix + b"counter"
    busy = [k, *(prefix + f"other{n}".encode() for n in range(8))]
    stop = asyncio.Event()

    async def keep_reading() -> None:
        while not stop.is_set():
            await asyncio.gather(*(store.get(other) for other in busy))

    readers = [asyncio.create_task(keep_reading()) for _ in range(4)]
    try:
        for n in range(50):
            assert await store.commit([Put(k, str(n).encode())])
            item = await store.get(k)
            assert item is not None and item.value == str(n).encode()
    finally:
        stop.set()
        await asyncio.gather(*readers)


async def test_watch_current_delivers_changes_and_progress_answers(
    store: Store, prefix: bytes
) -> None:
    """watch_current: the changes under the prefix in order; while nothing
    changes there, answers to its progress requests, each saying when it was
    asked."""
    await store.commit([Put(prefix + b"a", b"1")])
    snapshot = await store.snapshot(prefix)
    await store.commit([Put(prefix + b"a", b"2")])
    await store.commit([Delete(prefix + b"a")])
    watch = store.watch_current(prefix, start_revision=snapshot.revision + 1, every=0.05)
    changes: list[Change] = []
    while len(changes) < 2:
        changes += (await asyncio.wait_for(anext(watch), 5)).changes
    assert [(c.key, c.value) for c in changes] == [(prefix + b"a", b"2"), (prefix + b"a", None)]
    after = time.monotonic()
    answers: list[float] = []
    while len(answers) < 3:
        delivered = await asyncio.wait_for(anext(watch), 5)
        assert delivered.changes == []
        assert delivered.asked_at is not None
        answers.append(delivered.asked_at)
    await watch.aclose()
    assert after <= answers[0] < answers[1] < answers[2]


async def test_watch_current_past_compaction_is_aborted(store: Store, prefix: bytes) -> None:
    assert await store.commit([Put(prefix + b"a", b"1")])
    old = store.revision_seen("")
    first = await store.transact([Put(prefix + b"a", b"2")])
    second = await store.transact([Put(prefix + b"a", b"3")])
    await store._etcd.current()[1].compact(second)
    watch = store.watch_current(prefix, start_revision=first, every=0.05)
    with pytest.raises(errors.Aborted) as caught:
        async with asyncio.timeout(5):
            async for delivered in watch:  # etcd 3.4 may answer progress first
                assert delivered.changes == []
    assert caught.value.reason == "WATCH_COMPACTED"
    assert old == 0  # keys outside /sfmesh/v1/ are no kind's


async def test_watch_current_of_an_unreachable_etcd_is_unavailable() -> None:
    store = Store(f"127.0.0.1:{closed_port()}", timeout=1)
    try:
        with pytest.raises(errors.Unavailable):
            watch = store.watch_current(b"/x/", start_revision=1, every=0.05)
            await asyncio.wait_for(anext(watch), 10)
    finally:
        await store.close()


async def test_transact_answers_the_revision_and_revision_seen_follows_kinds(
    store: Store, etcd: str
) -> None:
    """revision_seen(kind): the newest revision of that kind this store wrote,
    or read (an item's mod_revision); a refused write counts for nothing."""
    at = key("cachetest", str(uuid.uuid4()))
    revision = await store.transact([Put(at, b"v", mod_revision=0)])
    assert revision > 0
    assert store.revision_seen("cachetest") == revision
    assert await store.transact([Put(at, b"w", mod_revision=0)]) == 0
    assert store.revision_seen("cachetest") == revision
    reader = Store(etcd)
    try:
        assert reader.revision_seen("cachetest") == 0
        await reader.get(at)
        assert reader.revision_seen("cachetest") == revision
        assert reader.revision_seen("other") == 0
    finally:
        await reader.close()
    assert await store.commit([Delete(at)])
    assert store.revision_seen("cachetest") > revision
