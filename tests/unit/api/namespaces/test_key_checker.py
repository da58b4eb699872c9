"""services/api/namespaces/keys.py KeyChecker: logins' bcrypt checks run a
bounded number at a time, and a flood beyond the queue is refused at once."""

from __future__ import annotations

import asyncio
import time

import bcrypt
import pytest
from sfmesh.v1 import records_pb2

from services.api.namespaces.keys import KeyChecker
from services.common import errors

ROUNDS = 8
"""bcrypt's cost for these tests' hashes: a check takes a few ms."""


def namespace(*secrets: str) -> records_pb2.NamespaceRecord:
    return records_pb2.NamespaceRecord(
        name="flooded",
        keys=[
            records_pb2.KeyRecord(
                name=f"k{n}", bcrypt_hash=bcrypt.hashpw(secret.encode(), bcrypt.gensalt(ROUNDS))
            )
            for n, secret in enumerate(secrets)
        ],
    )


async def test_the_matching_key_or_none() -> None:
    checker = KeyChecker()
    record = namespace("first", "second")
    found = await checker.matching_key(record, "second")
    assert found is not None and found.name == "k1"
    assert await checker.matching_key(record, "wrong") is None
    assert await checker.matching_key(record, "x" * 73) is None  # longer than bcrypt reads


async def test_a_flood_beyond_the_queue_is_refused_at_once_and_costs_no_bcrypt() -> None:
    checker = KeyChecker(threads=1, waiting=2)
    record = namespace(*(f"key-{n}" for n in range(4)))
    started = time.monotonic()
    answers = await asyncio.gather(
        *(checker.matching_key(record, "wrong") for _ in range(10)), return_exceptions=True
    )
    refused = [a for a in answers if isinstance(a, errors.Unavailable)]
    assert len(refused) == 7  # 1 checking, 2 waiting
    assert all(a.reason == "LOGINS_BUSY" and a.retry_after == 1 for a in refused)
    assert [a for a in answers if not isinstance(a, errors.Unavailable)] == [None] * 3
    found = await checker.matching_key(record, "key-3")  # the flood is over: logins go on
    assert found is not None and found.name == "k3"
    assert time.monotonic() - started < 5


async def test_a_caller_that_left_still_counts_until_its_check_ends() -> None:
    checker = KeyChecker(threads=1, waiting=0)
    record = namespace(*(f"key-{n}" for n in range(20)))
    first = asyncio.create_task(checker.matching_key(record, "wrong"))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(errors.Unavailable):  # the abandoned check still runs
        await checker.matching_key(record, "wrong")
    for _ in range(500):
        await asyncio.sleep(0.01)
        try:
            assert await checker.matching_key(record, "key-0") is not None
            break
        except errors.Unavailable:
            continue
    else:
        pytest.fail("the checker never admitted a login again")
