"""The one gateway to etcd: reads, paged prefix listings and transactions
guarded by compare-and-swap on `mod_revision`.

Built on aetcd (python-etcd3 cannot load under current protobuf). aetcd's gRPC
channel reconnects by itself; every call here has a deadline, and an etcd that
cannot be reached surfaces as `errors.Unavailable`, never as a half-done write:
each write is one etcd transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import grpc
from aetcd import rpc
from google.protobuf.message import Message

from services.common import errors
from services.common.config import split_address
from services.common.read_batch import ReadBatcher

M = TypeVar("M", bound=Message)

PREFIX = "/sfmesh/v1/"
_PREFIX_BYTES = PREFIX.encode()
PAGE_SIZE = 500
RETRY_START = 0.2
RETRY_MAX = 5.0
RETRY_AFTER = 1
"""Seconds a caller refused for an unreachable etcd is told to wait: a
restarted or unfrozen etcd serves again within about that."""
PROGRESS_TIMEOUT = 1.0
"""Seconds a watch's progress request may go unanswered before the watch is
taken for broken."""
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_TOO_LARGE = grpc.StatusCode.INVALID_ARGUMENT
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


@dataclass(frozen=True)
class Delete:
    """Remove `key`, expecting it at `mod_revision` when given."""

    key: bytes
    mod_revision: int | None = None


Operation = Put | Delete


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

    def __init__(self, address: str, *, timeout: float = 5.0) -> None:
        host, port = split_address(address)
        self._client = aetcd.Client(host=host, port=port, timeout=int(timeout) or 1)
        self._reads: ReadBatcher[Item | None] = ReadBatcher(self._read_keys)
        self._seen: dict[str, int] = {}

    async def close(self) -> None:
        """Close the connection."""
        await self._client.close()

    async def get(self, key: bytes) -> Item | None:
        """The item at `key`, or None: a linearizable read, sent with the
        other keys asked for meanwhile (`read_batch.py`)."""
        return await self._reads.get(key)

    async def _read_keys(self, keys: Sequence[bytes]) -> list[Item | None]:
        """The item at each key (None where absent), read at one revision."""
        ranges = [rpc.RangeRequest(key=key) for key in keys]
        async with _mapped_errors():
            await self._client.connect()
            if len(ranges) == 1:
                answers = [await self._client.kvstub.Range(ranges[0], **self._call_options())]
            else:
                request = rpc.TxnRequest(
                    success=[rpc.RequestOp(request_range=one) for one in ranges]
                )
                reply = await self._client.kvstub.Txn(request, **self._call_options())
                answers = [op.response_range for op in reply.responses]
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

    def _call_options(self) -> dict[str, Any]:
        """The deadline and credentials of aetcd's own calls."""
        return {"timeout": self._client._timeout, "metadata": self._client.metadata}

    async def members(self) -> list[Member]:
        """Every member of the etcd cluster and the URLs it listens at."""
        async with _mapped_errors():
            return [
                Member(found.name, tuple(found.peer_urls), tuple(found.client_urls))
                async for found in self._client.members()
            ]

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
            async with _mapped_errors():
                await self._client.connect()
                response = await self._client.kvstub.Range(request, **self._call_options())
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
        so nothing is missed or repeated. When etcd has compacted the history
        the watcher still needed, `errors.Aborted` says so: start again from a
        fresh snapshot.
        """
        revision = start_revision
        retry = RETRY_START
        while True:
            try:
                watch = await self._client.watch_prefix(
                    prefix, start_revision=revision, prev_kv=True
                )
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
                await asyncio.sleep(retry)
                retry = min(retry * 2, RETRY_MAX)

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
        from a fresh snapshot.
        """
        async with _mapped_errors():
            await self._client.connect()
            call = rpc.WatchStub(self._client.channel).Watch(metadata=self._client.metadata)
        answers: asyncio.Queue[Any] = asyncio.Queue()
        reader = asyncio.create_task(_read_into(call, answers))
        progress = rpc.WatchRequest(progress_request=rpc.WatchProgressRequest())
        asked_at: float | None = None
        next_ask = time.monotonic() + every
        try:
            async with _mapped_errors():
                create = rpc.WatchCreateRequest(
                    key=prefix,
                    range_end=aetcd.utils.prefix_range_end(prefix),
                    start_revision=start_revision,
                )
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
                    elif not answer.created:
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
    ) -> M:
        """Apply `change` to a copy of the record `current` (read at
        `mod_revision`) and write it with compare-and-swap. When another
        writer got there first, the record is read again and `change`
        re-applied to the fresh copy; `change` may raise to refuse. Raises
        `missing()` when the key has gone."""
        while True:
            record = type(current)()
            record.CopyFrom(current)
            change(record)
            if await self.commit([Put(at, record.SerializeToString(), mod_revision)]):
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
        success = [
            rpc.RequestOp(request_put=rpc.PutRequest(key=op.key, value=op.value))
            if isinstance(op, Put)
            else rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=op.key))
            for op in operations
        ]
        async with _mapped_errors():
            await self._client.connect()
            reply = await self._client.kvstub.Txn(
                rpc.TxnRequest(compare=compare, success=success), **self._call_options()
            )
        if not reply.succeeded:
            return 0
        for op in operations:
            self._saw(op.key, reply.header.revision)
        return int(reply.header.revision)

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


class _mapped_errors:
    """Turn etcd connection failures and timeouts into `errors.Unavailable`
    with a retry hint (503 with Retry-After over REST), and a request etcd
    refuses for its size into `errors.InvalidArgument` (400)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        # aetcd raises its own errors from the gRPC one, which has the code;
        # etcd answers INVALID_ARGUMENT "request is too large" near REQUEST_BYTES
        answer = exc.__cause__ if isinstance(exc, aetcd.exceptions.ClientError) else exc
        if isinstance(answer, grpc.aio.AioRpcError) and answer.code() == _TOO_LARGE:
            raise errors.InvalidArgument(
                f"etcd refused the request: {answer.details()}", reason="ETCD_REQUEST_REFUSED"
            ) from exc
        unreachable = isinstance(exc, aetcd.exceptions.ClientError) or (
            isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _UNREACHABLE
        )
        if unreachable:
            raise errors.Unavailable(
                f"etcd is unavailable: {exc}", reason="ETCD_UNAVAILABLE", retry_after=RETRY_AFTER
            ) from exc
