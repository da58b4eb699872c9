"""Single-key reads gathered into as few etcd round trips as stay linearizable.

A read asked while none is in flight goes out at once. Reads asked while one
is in flight wait for it to return, then go out together, as one etcd
transaction of range requests. Each key is therefore read by a request sent
after it was asked for, so every read still sees every write acknowledged
before it began: the batching saves round trips (most of what a read costs
the api under load, on both sides of the connection) without the staleness a
cache would bring. When etcd does not answer a read (`errors.Unavailable`),
the reads asked meanwhile fail with it at once rather than each wait out a
deadline of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from services.common import errors

T = TypeVar("T")

MAX_BATCH = 128
"""etcd's default `--max-txn-ops`: the most range requests one transaction
may carry."""


class ReadBatcher(Generic[T]):
    """Gathers `get(key)` calls made while a read is in flight and answers
    them with one `read_many(keys)` call (its answers in the keys' order)."""

    def __init__(self, read_many: Callable[[Sequence[bytes]], Awaitable[Sequence[T]]]) -> None:
        self._read_many = read_many
        self._waiting: list[tuple[bytes, asyncio.Future[T]]] = []
        self._reader: asyncio.Task[None] | None = None

    async def get(self, key: bytes) -> T:
        """The answer for `key`, read by a request sent after this call."""
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, answer))
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_while_asked())
        return await answer

    async def _read_while_asked(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                failure = await self._answer(batch)
                if isinstance(failure, errors.Unavailable):
                    # etcd did not answer: the reads asked meanwhile fail
                    # alike, rather than each wait out its own deadline
                    waiting, self._waiting = self._waiting, []
                    _fail(waiting, failure)
        finally:
            self._reader = None

    async def _answer(self, batch: list[tuple[bytes, asyncio.Future[T]]]) -> Exception | None:
        """Answer `batch` with one read; the read's failure, if it failed."""
        keys = list(dict.fromkeys(key for key, _ in batch))
        try:
            found = dict(zip(keys, await self._read_many(keys), strict=True))
        except Exception as exc:  # every waiter gets the failure, none hangs
            _fail(batch, exc)
            return exc
        except BaseException:
            for _, answer in batch:
                answer.cancel()
            raise
        for key, answer in batch:
            if not answer.done():  # a waiter cancelled meanwhile is skipped
                answer.set_result(found[key])
        return None


def _fail(batch: list[tuple[bytes, asyncio.Future[T]]], failure: Exception) -> None:
    for _, answer in batch:
        if not answer.done():
            answer.set_exception(failure)
