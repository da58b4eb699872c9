"""Unit tests of services/scheduler/leadership.py: the claim a campaign
writes, and a term's bound on a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.common.leaders import SCHEDULER, Leader, leader_key
from services.common.store import Expect, Put
from services.scheduler.leadership import Term, claim

KEY = leader_key(SCHEDULER)


def test_nobody_leads_so_the_claim_is_create_only() -> None:
    assert claim(Leader("", 9), "10.0.0.1:13011", lease=5) == Put(
        KEY, b"10.0.0.1:13011", mod_revision=0, lease=5
    )


def test_a_claim_naming_this_address_is_replaced() -> None:
    found = Leader("10.0.0.1:13011", revision=9, mod_revision=7)
    assert claim(found, "10.0.0.1:13011", lease=5) == Put(KEY, b"10.0.0.1:13011", 7, lease=5)


def test_another_leader_is_left_alone() -> None:
    assert claim(Leader("10.0.0.2:13011", 9, 7), "10.0.0.1:13011", lease=5) is None


def test_a_term_fences_with_its_claims_revision() -> None:
    assert Term(41).fence() == Expect(KEY, 41)


async def test_a_stream_within_a_term_ends_with_it() -> None:
    term = Term(1)
    arrived: asyncio.Queue[int] = asyncio.Queue()

    async def messages() -> AsyncIterator[int]:
        while True:
            yield await arrived.get()

    seen: list[int] = []

    async def read() -> None:
        async for message in term.within(messages()):
            seen.append(message)

    reading = asyncio.create_task(read())
    await arrived.put(1)
    await arrived.put(2)
    await asyncio.sleep(0.01)
    term.over.set()
    await asyncio.wait_for(reading, 1)
    assert seen == [1, 2]


async def test_a_stream_that_ends_first_ends_the_iteration() -> None:
    async def messages() -> AsyncIterator[int]:
        yield 1

    assert [message async for message in Term(1).within(messages())] == [1]
