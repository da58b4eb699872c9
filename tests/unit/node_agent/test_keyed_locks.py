"""services/node_agent/keyed_locks.py: one lock per key, gone with its last user."""

from __future__ import annotations

import asyncio

from services.node_agent.keyed_locks import KeyedLocks


async def test_a_key_s_lock_excludes_and_goes_with_its_last_user() -> None:
    locks, order = KeyedLocks(), []
    entered = asyncio.Event()

    async def first() -> None:
        async with locks.hold("a"):
            entered.set()
            await asyncio.sleep(0.01)
            order.append("first")

    async def second() -> None:
        await entered.wait()
        async with locks.hold("a"):
            order.append("second")

    async def other() -> None:
        async with locks.hold("b"):
            order.append("other")

    await asyncio.gather(first(), second(), other())
    assert order == ["other", "first", "second"]
    assert len(locks) == 0


async def test_a_failure_inside_still_drops_the_lock() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("a"):
            raise ValueError
    except ValueError:
        pass
    assert len(locks) == 0
