"""services/common/read_batch.py: which reads go out together, and that no
read is answered by a request sent before it was asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.common import errors
from services.common.read_batch import MAX_BATCH, ReadBatcher


class Recorder:
    """A `read_many` that answers each key with its name and a serial of the
    request, released one request at a time by the test."""

    def __init__(self) -> None:
        self.requests: list[list[bytes]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def read_many(self, keys: Sequence[bytes]) -> list[str]:
        self.requests.append(list(keys))
        serial = len(self.requests)
        await self.release.wait()
        self.release.clear()
        if self.fail is not None:
            raise self.fail
        return [f"{key.decode()}@{serial}" for key in keys]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_read_alone_goes_out_at_once() -> None:
    recorder = Recorder()
    batcher = ReadBatcher(recorder.read_many)
    read = asyncio.create_task(batcher.get(b"a"))
    await settle()
    assert recorder.requests == [[b"a"]]
    recorder.release.set()
    assert await read == "a@1"


async def test_reads_asked_during_a_read_go_out_together_after_it() -> None:
    recorder = Recorder()
    batcher = ReadBatcher(recorder.read_many)
    first = asyncio.create_task(batcher.get(b"a"))
    await settle()
    later = [asyncio.create_task(batcher.get(name)) for name in (b"b", b"c", b"b")]
    await settle()
    assert recorder.requests == [[b"a"]]  # nothing joins a request already sent
    recorder.release.set()
    assert await first == "a@1"
    await settle()
    assert recorder.requests == [[b"a"], [b"b", b"c"]]  # one request, each key once
    recorder.release.set()
    assert await asyncio.gather(*later) == ["b@2", "c@2", "b@2"]


async def test_a_key_asked_again_during_its_read_is_read_again() -> None:
    """Linearizable: the second ask may follow a write the first read missed."""
    recorder = Recorder()
    batcher = ReadBatcher(recorder.read_many)
    first = asyncio.create_task(batcher.get(b"a"))
    await settle()
    second = asyncio.create_task(batcher.get(b"a"))
    recorder.release.set()
    assert await first == "a@1"
    await settle()
    recorder.release.set()
    assert await second == "a@2"


async def test_a_batch_is_at_most_etcds_transaction_limit() -> None:
    recorder = Recorder()
    batcher = ReadBatcher(recorder.read_many)
    first = asyncio.create_task(batcher.get(b"first"))
    await settle()
    many = [asyncio.create_task(batcher.get(str(n).encode())) for n in range(MAX_BATCH + 5)]
    await settle()
    for _ in range(3):
        recorder.release.set()
        await settle()
    await asyncio.gather(first, *many)
    assert [len(request) for request in recorder.requests] == [1, MAX_BATCH, 5]


async def test_a_failed_read_fails_every_reader_of_its_batch_only() -> None:
    recorder = Recorder()
    batcher = ReadBatcher(recorder.read_many)
    first = asyncio.create_task(batcher.get(b"a"))
    await settle()
    joined = [asyncio.create_task(batcher.get(name)) for name in (b"b", b"c")]
    recorder.fail = RuntimeError("etcd is gone")
    recorder.release.set()
    with pytest.raises(RuntimeError, match="etcd is gone"):
        await first
    await settle()
    recorder.release.set()
    for read in joined:
        with pytest.raises(RuntimeError, match="etcd is gone"):
            await read
    recorder.fail = None
    again = asyncio.create_task(batcher.get(b"a"))
    await settle()
    recorder.release.set()
    assert await again == "a@3"  # the batcher reads on after a failure


async def test_reads_asked_while_etcd_did_not_answer_fail_with_it() -> None:
    """An unreachable etcd fails the reads queued behind the read that found
    out, instead of sending them to wait out their own deadline."""
    recorder = Recorder()
    batcher = ReadBatcher(recorder.read_many)
    first = asyncio.create_task(batcher.get(b"a"))
    await settle()
    queued = asyncio.create_task(batcher.get(b"b"))
    await settle()
    recorder.fail = errors.Unavailable("etcd is unavailable", reason="ETCD_UNAVAILABLE")
    recorder.release.set()
    for read in (first, queued):
        with pytest.raises(errors.Unavailable):
            await read
    assert recorder.requests == [[b"a"]]


async def test_a_cancelled_reader_does_not_stop_the_others() -> None:
    recorder = Recorder()
    batcher = ReadBatcher(recorder.read_many)
    first = asyncio.create_task(batcher.get(b"a"))
    await settle()
    gone = asyncio.create_task(batcher.get(b"b"))
    kept = asyncio.create_task(batcher.get(b"c"))
    await settle()
    gone.cancel()
    recorder.release.set()
    await first
    await settle()
    recorder.release.set()
    assert await kept == "c@2"
    assert gone.cancelled()
