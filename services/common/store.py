"""The one gateway to etcd: reads, paged prefix listings and transactions
guarded by compare-and-swap on `mod_revision`.

Built on aetcd (python-etcd3 cannot load under current protobuf). The store
talks to one member of the cluster at a time and fails over to the next when
it stops answering (`etcd_clients.py`): reads are sent again there, watches
resume from their next unseen revision, leases are kept alive through it
(`leases.py`), and a write whose answer was lost is resolved before it is
sent again (`txn_outcome.py`). Every call has a deadline, and an etcd that
cannot be reached surfaces as `errors.Unavailable`, never as a half-done
write: each write is one etcd transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import grpc
from aetcd import rpc
from google.protobuf.message import Message

from services.common import errors, txn_outcome
from services.common.etcd_clients import EtcdClients, call_options, mapped_errors
from services.common.etcd_endpoints import parse_endpoints
from services.common.etcd_metrics import REQUEST_SECONDS, RETRIES
from services.common.leases import KeptLease, grant
from services.common.read_batch import ReadBatcher
from services.common.transport import Transport

M = TypeVar("M", bound=Message)
log = logging.getLogger(__name__)

PREFIX = "/sfmesh/v1/"
_PREFIX_BYTES = PREFIX.encode()
PAGE_SIZE = 500
RETRY_START = 0.2
RETRY_MAX = 5.0
PROGRESS_TIMEOUT = 1.0
"""Seconds a watch's progress request may go unanswered before the watch is
taken for broken."""
REQUEST_BYTES = 1536 * 1024
"""etcd's `--max-request-bytes` (its default, which sfmesh's etcd keeps): a
write carrying more is refused here, before etcd's gRPC limit answers
RESOURCE_EXHAUSTED, which it also answers when it is out of space."""


def key(kind: str, name: str) -> bytes:
    """The key of one object: `/sfmesh/v1/<kind>/<name>`."""
    return f"{PREFIX}{kind}/{name}".encode()


def kind_prefix(kind: str) -> bytes:
    """The prefix under which every object of a kind lives."""
    return f"{PREFIX}{kind}/".encode()


@dataclass(frozen=True)
class Item:
    """One stored key."""

    key: bytes
    value: bytes
    mod_revision: int


@dataclass(frozen=True)
class Put:
    """Write `value` at `key`, expecting the key at `mod_revision` (0: absent)."""

    key: bytes
    value: bytes
    mod_revision: int | None = None
    """None: no expectation; 0: the key must not exist; n: it must be at n."""
    lease: int = 0
    """The lease the key lives with (`Store.lease`): it goes when the lease
    expires; 0 for none."""


@dataclass(frozen=True)
class Delete:
    """Remove `key`, expecting it at `mod_revision` when given."""

    key: bytes
    mod_revision: int | None = None


@dataclass(frozen=True)
class Expect:
    """Change nothing at `key`, but expect it at `mod_revision` (0: absent):
    a guard on a key the transaction leaves alone, such as a leader's claim
    fencing the writes of its term."""

    key: bytes
    mod_revision: int


Operation = Put | Delete | Expect


@dataclass(frozen=True)
class Snapshot:
    """Items under a prefix as of one revision."""

    items: list[Item]
    revision: int


@dataclass(frozen=True)
class Member:
    """One member of the etcd cluster."""

    name: str
    peer_urls: tuple[str, ...]
    """Where other members reach it (the peer port)."""
    client_urls: tuple[str, ...]
    """Where clients reach it."""


@dataclass(frozen=True)
class Change:
    """One change seen by a watch."""

    key: bytes
    value: bytes | None
    """The new value; None when the key was deleted."""
    previous: bytes | None
    """The value before the change; None when the key was created."""
    mod_revision: int


@dataclass(frozen=True)
class Delivered:
    """One answer on a watch of `Store.watch_current`: changes, or (none) an
    answer to a progress request."""

    changes: list[Change]
    asked_at: float | None
    """For an answer to a progress request: when it was asked (monotonic
    clock). etcd and the watch stream were alive then. (The revision such an
    answer carries is not relied on: etcd before 3.4.24 and 3.5.8 may send it
    while the watch still catches up.)"""


def _change(event: Any) -> Change:
    deleted = event.kind == "DELETE"
    # aetcd wraps an absent prev_kv as an empty one: version 0 means none.
    had_previous = event.prev_kv is not None and event.prev_kv.version > 0
    previous = event.prev_kv.value if had_previous else None
    return Change(
        key=event.kv.key,
        value=None if deleted else event.kv.value,
        previous=previous,
        mod_revision=event.kv.mod_revision,
    )


class Store:
    """An etcd connection with the few operations sfmesh needs."""

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        timeout: float = 5.0,
        transport: Transport | None = None,
    ) -> None:
        """`endpoints`: the client endpoints of etcd's members, as a sequence
        or comma-separated (`host:port,host:port`); `timeout`: each call's
        deadline, and how long a call keeps trying other members;
        `transport`: TLS to etcd, or plaintext (None)."""
        chosen = parse_endpoints(endpoints) if isinstance(endpoints, str) else tuple(endpoints)
        self._etcd = EtcdClients(chosen, timeout=timeout, transport=transport or Transport())
        self._reads: ReadBatcher[Item | None] = ReadBatcher(self._read_keys)
        self._seen: dict[str, int] = {}
        self._writer = txn_outcome.writer_key()
        self._revision = 0
        """The newest revision etcd answered this store with."""

    async def close(self) -> None:
        """Remove this store's writer key (when etcd answers) and close the
        connections."""
        if self._revision:
            delete = rpc.DeleteRangeRequest(key=self._writer)
            with contextlib.suppress(errors.Unavailable):
                await self._etcd.once(
                    lambda client: client.kvstub.DeleteRange(delete, **call_options(client)),
                    operation="delete",
                )
        await self._etcd.close()

    def lease(self, ttl: int, *, revoke: bool = True) -> KeptLease:
        """A lease of `ttl` seconds, granted on entering `async with` and kept
        alive meanwhile through whichever member answers; on exit revoked, or
        left to expire `ttl` seconds later when not `revoke`. Keys written
        with it (`Put(..., lease=kept.id)`) go when it ends."""
        return KeptLease(self._etcd, ttl, revoke=revoke)

    async def grant(self, ttl: int) -> int:
        """A lease of `ttl` seconds that nobody keeps alive: keys written with
        it go `ttl` seconds from now, whatever becomes of their writer."""
        return await grant(self._etcd, ttl)

    async def get(self, key: bytes) -> Item | None:
        """The item at `key`, or None: a linearizable read, sent with the
        other keys asked for meanwhile (`read_batch.py`)."""
        return await self._reads.get(key)

    async def _read_keys(self, keys: Sequence[bytes]) -> list[Item | None]:
        """The item at each key (None where absent), read at one revision."""
        ranges = [rpc.RangeRequest(key=key) for key in keys]

        async def read(client: aetcd.Client) -> list[Any]:
            if len(ranges) == 1:
                answer = await client.kvstub.Range(ranges[0], **call_options(client))
                self._heard(answer.header)
                return [answer]
            request = rpc.TxnRequest(success=[rpc.RequestOp(request_range=one) for one in ranges])
            reply = await client.kvstub.Txn(request, **call_options(client))
            self._heard(reply.header)
            return [op.response_range for op in reply.responses]

        answers = await self._etcd.call(read, operation="get")
        found = [
            Item(answer.kvs[0].key, answer.kvs[0].value, answer.kvs[0].mod_revision)
            if answer.kvs
            else None
            for answer in answers
        ]
        for item in found:
            if item is not None:
                self._saw(item.key, item.mod_revision)
        return found

    def _heard(self, header: Any) -> None:
        """Note the revision of an answer: any write sent after it lands above."""
        self._revision = max(self._revision, int(header.revision))

    async def members(self) -> list[Member]:
        """Every member of the etcd cluster and the URLs it listens at."""

        async def read(client: aetcd.Client) -> list[Member]:
            return [
                Member(found.name, tuple(found.peer_urls), tuple(found.client_urls))
                async for found in client.members()
            ]

        return await self._etcd.call(read, operation="members")

    async def list_prefix(
        self, prefix: bytes, *, page_size: int = PAGE_SIZE, after: bytes = b""
    ) -> AsyncIterator[Item]:
        """Every item under `prefix` in key order (only keys past `prefix + after`
        when given), read in pages at one revision."""
        async for items, _ in self._pages(prefix, page_size, after):
            for item in items:
                yield item

    async def snapshot(self, prefix: bytes) -> Snapshot:
        """Every item under `prefix`, and the revision they were read at, so a
        watch from `revision + 1` misses nothing and repeats nothing."""
        found: list[Item] = []
        at = 0
        async for items, revision in self._pages(prefix, PAGE_SIZE):
            found.extend(items)
            at = revision
        return Snapshot(found, at)

    async def _pages(
        self, prefix: bytes, page_size: int, after: bytes = b""
    ) -> AsyncIterator[tuple[list[Item], int]]:
        end = aetcd.utils.prefix_range_end(prefix)
        start = prefix + after + b"\0" if after else prefix
        revision = 0
        while True:
            request = rpc.RangeRequest(key=start, range_end=end, limit=page_size, revision=revision)
            response = await self._etcd.call(
                lambda client, request=request: client.kvstub.Range(  # type: ignore[misc]
                    request, **call_options(client)
                ),
                operation="range",
            )
            self._heard(response.header)
            revision = revision or response.header.revision
            items = [Item(kv.key, kv.value, kv.mod_revision) for kv in response.kvs]
            for item in items:
                self._saw(item.key, item.mod_revision)
            yield items, revision
            if not response.more or not response.kvs:
                return
            start = response.kvs[-1].key + b"\0"

    async def watch_prefix(
        self, prefix: bytes, *, start_revision: int
    ) -> AsyncGenerator[Change, None]:
        """Every change under `prefix` from `start_revision` on, for as long as
        the caller iterates.

        A broken connection is re-established from the next unseen revision,
        on the next member when the one in use stopped answering, so nothing
        is missed or repeated. When etcd has compacted the history
        the watcher still needed, `errors.Aborted` says so: start again from a
        fresh snapshot.
        """
        revision = start_revision
        retry = RETRY_START
        while True:
            at, client = self._etcd.current()
            try:
                with REQUEST_SECONDS.labels("watch-open").time():
                    watch = await client.watch_prefix(prefix, start_revision=revision, prev_kv=True)
                try:
                    async for event in watch:
                        retry = RETRY_START
                        revision = event.kv.mod_revision + 1
                        yield _change(event)
                finally:
                    await watch.cancel()
            except aetcd.exceptions.RevisionCompactedError as exc:
                raise errors.Aborted(
                    "the watch fell behind etcd's compaction; start a new watch",
                    reason="WATCH_COMPACTED",
                ) from exc
            except aetcd.exceptions.ClientError:
                self._etcd.fail_over(at)
                await asyncio.sleep(retry)
                retry = min(retry * 2, RETRY_MAX)
                RETRIES.labels("watch-open").inc()

    async def watch_current(
        self, prefix: bytes, *, start_revision: int, every: float
    ) -> AsyncGenerator[Delivered, None]:
        """Every change under `prefix` from `start_revision` on (without
        previous values), and, about every `every` seconds, etcd's answer to a
        progress request, which says etcd and this stream were alive when it
        was asked. A copy kept by this watch therefore knows it is live even
        while nothing changes, which `watch_prefix` (reconnecting by itself)
        cannot tell.

        Raises `errors.Aborted` when etcd compacted the history the watch
        needed, and `errors.Unavailable` when the stream breaks or a progress
        request goes unanswered for PROGRESS_TIMEOUT: the caller starts again
        from a fresh snapshot (which the next member answers when this one
        stopped answering).
        """
        at, client = self._etcd.current()
        try:
            async for delivered in self._watch_current(client, prefix, start_revision, every):
                yield delivered
        except errors.Unavailable:
            self._etcd.fail_over(at)
            raise

    async def _watch_current(
        self, client: aetcd.Client, prefix: bytes, start_revision: int, every: float
    ) -> AsyncGenerator[Delivered, None]:
        async with mapped_errors():
            await client.connect()
            call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
        answers: asyncio.Queue[Any] = asyncio.Queue()
        reader = asyncio.create_task(_read_into(call, answers))
        progress = rpc.WatchRequest(progress_request=rpc.WatchProgressRequest())
        asked_at: float | None = None
        next_ask = time.monotonic() + every
        try:
            async with mapped_errors():
                create = rpc.WatchCreateRequest(
                    key=prefix,
                    range_end=aetcd.utils.prefix_range_end(prefix),
                    start_revision=start_revision,
                )
                opening = time.perf_counter()
                await _send(call, rpc.WatchRequest(create_request=create))
                while True:
                    now = time.monotonic()
                    if asked_at is None and now >= next_ask:
                        asked_at = now
                        await _send(call, progress)
                    due = next_ask if asked_at is None else asked_at + PROGRESS_TIMEOUT
                    try:  # asyncio.timeout, unlike wait_for, never swallows a cancel
                        async with asyncio.timeout(max(due - now, 0)):
                            answer = await answers.get()
                    except TimeoutError:
                        if asked_at is not None:
                            raise errors.Unavailable(
                                "etcd left a watch's progress request unanswered",
                                reason="ETCD_UNAVAILABLE",
                            ) from None
                        continue
                    if isinstance(answer, BaseException):
                        raise answer
                    if answer.events:
                        changes = [_raw_change(event) for event in answer.events]
                        yield Delivered(changes, None)
                    elif answer.created:
                        opened = time.perf_counter() - opening
                        REQUEST_SECONDS.labels("watch-open").observe(opened)
                    else:
                        yield Delivered([], asked_at)
                        asked_at, next_ask = None, time.monotonic() + every
        finally:
            reader.cancel()
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def update(
        self,
        at: bytes,
        current: M,
        mod_revision: int,
        change: Callable[[M], None],
        missing: Callable[[], errors.SfmeshError],
        *,
        also: Callable[[], Sequence[Operation]] | None = None,
    ) -> M:
        """Apply `change` to a copy of the record `current` (read at
        `mod_revision`) and write it with compare-and-swap, with the
        operations `also` gives after each `change` in the same transaction.
        When another writer got there first, the record is read again and
        `change` re-applied to the fresh copy; `change` may raise to refuse.
        Raises `missing()` when the key has gone."""
        while True:
            record = type(current)()
            record.CopyFrom(current)
            change(record)
            put = Put(at, record.SerializeToString(), mod_revision)
            if await self.commit([put, *(also() if also else ())]):
                return record
            item = await self.get(at)
            if item is None:
                raise missing()
            current, mod_revision = type(current).FromString(item.value), item.mod_revision

    async def commit(self, operations: Sequence[Operation]) -> bool:
        """Apply every operation in one transaction.

        Returns False, changing nothing, when any expectation on a
        `mod_revision` does not hold.
        """
        return await self.transact(operations) > 0

    async def transact(self, operations: Sequence[Operation]) -> int:
        """`commit`, answering the revision the transaction wrote at, or 0
        when it changed nothing because an expectation did not hold."""
        carried = sum(len(op.key) + len(op.value) for op in operations if isinstance(op, Put))
        if carried > REQUEST_BYTES:
            raise errors.InvalidArgument(
                f"etcd refused the request: {carried} bytes, more than its {REQUEST_BYTES}",
                reason="ETCD_REQUEST_REFUSED",
            )
        compare = [
            rpc.Compare(
                key=op.key,
                target=rpc.Compare.MOD,
                result=rpc.Compare.EQUAL,
                mod_revision=op.mod_revision,
            )
            for op in operations
            if op.mod_revision is not None
        ]
        changes = [op for op in operations if not isinstance(op, Expect)]
        success = [
            rpc.RequestOp(request_put=rpc.PutRequest(key=op.key, value=op.value, lease=op.lease))
            if isinstance(op, Put)
            else rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=op.key))
            for op in changes
        ]
        revision = await self._send_once(compare, success)
        for op in changes:
            self._saw(op.key, revision)
        return revision

    async def _send_once(self, compare: list[Any], success: list[Any]) -> int:
        """Send a transaction until its outcome is known, applying it at most
        once (the rule and why: `txn_outcome.py`); its revision, or 0 when
        its compares failed."""
        deadline = self._etcd.deadline()
        writer = self._writer
        if not self._revision:
            await self._etcd.call(
                lambda client: txn_outcome.revision_now(client, writer),
                operation="get",
                deadline=deadline,
            )
        floor = self._revision
        tokens: list[bytes] = []
        while True:
            tokens.append(txn_outcome.new_token())
            sent = [*success, txn_outcome.token_put(writer, tokens[-1])]
            request = rpc.TxnRequest(compare=compare, success=sent)
            try:
                reply = await self._etcd.once(
                    lambda client, request=request: client.kvstub.Txn(  # type: ignore[misc]
                        request, **call_options(client)
                    ),
                    operation="txn",
                )
            except errors.Unavailable:
                if time.monotonic() >= deadline:
                    raise
                earlier = await self._written(tokens, floor, deadline)
                log.info(
                    "a write's answer was lost; it %s",
                    f"applied at {earlier}" if earlier else "did not apply: sending it again",
                )
                if earlier:
                    return earlier
                RETRIES.labels("txn").inc()
                continue
            self._heard(reply.header)
            if reply.succeeded:
                return int(reply.header.revision)
            return await self._written(tokens[:-1], floor, deadline) if tokens[:-1] else 0

    async def _written(self, tokens: list[bytes], floor: int, deadline: float) -> int:
        """The revision one of `tokens` was written at since `floor`, or 0."""
        writer = self._writer
        return await self._etcd.call(
            lambda client: txn_outcome.written(client, writer, tokens, floor),
            operation="get",
            deadline=deadline,
        )

    def revision_seen(self, kind: str) -> int:
        """The newest revision at which this store wrote a record of `kind`,
        or read one (its `mod_revision`). A copy of those records kept by a
        watch shows everything this store's user has seen of them once it
        has applied that revision."""
        return self._seen.get(kind, 0)

    def _saw(self, at: bytes, revision: int) -> None:
        if at.startswith(_PREFIX_BYTES):
            kind = at[len(_PREFIX_BYTES) :].partition(b"/")[0].decode()
            if revision > self._seen.get(kind, 0):
                self._seen[kind] = revision


def _raw_change(event: Any) -> Change:
    """A change from etcd's own watch event (without previous values)."""
    deleted = event.type == rpc.Event.DELETE
    return Change(
        key=event.kv.key,
        value=None if deleted else event.kv.value,
        previous=None,
        mod_revision=event.kv.mod_revision,
    )


async def _send(call: Any, request: Any) -> None:
    """Write on a watch stream; one that has ended is Unavailable."""
    try:
        await call.write(request)
    except asyncio.InvalidStateError as exc:
        raise errors.Unavailable("etcd ended a watch", reason="ETCD_UNAVAILABLE") from exc


async def _read_into(call: Any, answers: asyncio.Queue[Any]) -> None:
    """Put each answer of a watch stream into `answers`; then what ended it:
    an error for a stream etcd ended, cancelled or compacted."""
    try:
        while True:
            answer = await call.read()
            if answer is grpc.aio.EOF:
                raise errors.Unavailable("etcd ended a watch", reason="ETCD_UNAVAILABLE")
            if answer.compact_revision:
                raise errors.Aborted(
                    "the watch fell behind etcd's compaction; start a new watch",
                    reason="WATCH_COMPACTED",
                )
            if answer.canceled:
                raise errors.Unavailable(
                    f"etcd cancelled a watch: {answer.cancel_reason}", reason="ETCD_UNAVAILABLE"
                )
            answers.put_nowait(answer)
    except Exception as exc:
        answers.put_nowait(exc)
