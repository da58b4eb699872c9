"""Single-key reads gathered into as few etcd round trips as stay linearizable.

A read asked while none is in flight goes out at once. Reads asked while one
is in flight wait for it to return, then go out together, as one etcd
transaction of range requests. Each key is therefore read by a request sent
after it was asked for, so every read still sees every write acknowledged
before it began: the batching saves round trips (most of what a read costs
the api under load, on both sides of the connection) without the staleness a
cache would bring.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

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
                await self._answer(batch)
        finally:
            self._reader = None

    async def _answer(self, batch: list[tuple[bytes, asyncio.Future[T]]]) -> None:
        keys = list(dict.fromkeys(key for key, _ in batch))
        try:
            found = dict(zip(keys, await self._read_many(keys), strict=True))
        except BaseException as exc:  # every waiter gets the failure, none hangs
            for _, answer in batch:
                if answer.done():
                    continue
                if isinstance(exc, Exception):
                    answer.set_exception(exc)
                else:
                    answer.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for key, answer in batch:
            if not answer.done():  # a waiter cancelled meanwhile is skipped
                answer.set_result(found[key])
