"""An answered request's events are on disk before its answer: the emitter's
group commit (services/common/events.py) and the request interceptor's wait
(services/common/interceptors.py), on a real grpc.aio server on loopback.

The eventlog is never started, so nothing is acknowledged and every event
can only be in the spool. Syncs are counted, and held, by wrapping the real
`os.fdatasync`; the spool's writes through an audit hook on opening its
segment files for writing, however the code under test opens them."""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import shutil
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sfmesh.v1 import event_pb2, eventlog_service_pb2

from services.common import errors, events
from services.common.events import EventEmitter
from services.common.interceptors import RequestInterceptor
from services.common.spool import SUFFIX, read_records
from services.common.transport import Transport

SERVICE = "test.Durable"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def on_disk(spool_dir: Path) -> list[str]:
    """The messages of the events in the spool's files, as a new process would read them."""
    messages = []
    for path in sorted(spool_dir.glob(f"*{SUFFIX}")):
        entries, _ = read_records(path.read_bytes())
        for entry in entries:
            messages.append(eventlog_service_pb2.EventRecord.FromString(entry.payload).message)
    return messages


class Hold:
    """Counts the calls of a real blocking function; the next one can be held
    at a gate, as a slow or hung disk would, or fail, as a failing one would."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.count = 0
        self.gate: threading.Event | None = None
        self.holding = False
        """A call waits at the gate."""
        self.error: OSError | None = None
        """The next call raises this instead."""
        self._real = real

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        error, self.error = self.error, None
        if error is not None:
            raise error
        gate, self.gate = self.gate, None
        if gate is not None:
            self.holding = True
            gate.wait(10)
            self.holding = False
        return self._real(*args, **kwargs)


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hold]:
    """The spool's syncs."""
    counter = Hold(os.fdatasync)
    monkeypatch.setattr(os, "fdatasync", counter)
    yield counter


_segment_writes: list[Hold] = []
"""The `appends` fixture in use, if any."""


def _on_audit(event: str, args: tuple[Any, ...]) -> None:
    """Passes each open of a spool segment for writing to `_segment_writes`."""
    writes = event == "open" and bool(args[2] & (os.O_WRONLY | os.O_RDWR))
    if writes and _segment_writes and str(args[0]).endswith(SUFFIX):
        _segment_writes[-1]()


@functools.cache
def _install_audit_hook() -> None:
    sys.addaudithook(_on_audit)  # for the process's lifetime: hooks cannot be removed


@pytest.fixture
def appends() -> Iterator[Hold]:
    """The spool's writes: each opens a segment file for writing."""
    _install_audit_hook()
    counter = Hold(lambda: None)
    _segment_writes.append(counter)
    yield counter
    _segment_writes.remove(counter)


@pytest.fixture
async def emitter(tmp_path: Path) -> AsyncIterator[EventEmitter]:
    """An emitter whose eventlog never answers."""
    started = EventEmitter(
        address=f"127.0.0.1:{free_port()}",
        producer_id="test-producer",
        spool_dir=tmp_path / "spool",
        fqdn="host.example",
        credentials=lambda: (),
        transport=Transport(),
    )
    await started.start()
    yield started
    await started.close(timeout=0)


def emit(emitter: EventEmitter, message: str) -> None:
    emitter.emit("instance", "u", event_pb2.EVENT_TYPE_AUDIT, message)


@pytest.fixture
async def channel(emitter: EventEmitter) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a server with the request interceptor whose methods are
    Write (emits the message it is sent), Refuse (emits, then fails), Watch
    (emits before each of two messages) and Read (emits nothing)."""

    async def write(request: bytes, context: Any) -> bytes:
        emit(emitter, request.decode())
        return b""

    async def refuse(request: bytes, context: Any) -> bytes:
        emit(emitter, request.decode())
        raise errors.Conflict("refused")

    async def watch(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for index in range(2):
            emit(emitter, f"{request.decode()}-{index}")
            yield b""

    async def read(request: bytes, context: Any) -> bytes:
        return b""

    handlers = {
        "Write": grpc.unary_unary_rpc_method_handler(write),
        "Refuse": grpc.unary_unary_rpc_method_handler(refuse),
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
        "Read": grpc.unary_unary_rpc_method_handler(read),
    }
    server = grpc.aio.server(interceptors=[RequestInterceptor()])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as opened:
        yield opened
    await server.stop(None)


def method(channel: grpc.aio.Channel, name: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(f"/{SERVICE}/{name}")


async def test_concurrent_waiters_share_one_commit(
    emitter: EventEmitter, syncs: Hold, tmp_path: Path
) -> None:
    for number in range(1000):
        emit(emitter, str(number))
    await asyncio.gather(*(emitter.durable() for _ in range(20)))
    assert on_disk(tmp_path / "spool") == [str(number) for number in range(1000)]
    assert syncs.count == 1


async def test_waiters_arriving_during_a_commit_share_the_next(
    emitter: EventEmitter, syncs: Hold, tmp_path: Path
) -> None:
    gate = syncs.gate = threading.Event()
    emit(emitter, "first")
    first = asyncio.create_task(emitter.durable())
    await asyncio.sleep(0.05)  # its commit is syncing, held at the gate
    assert syncs.count == 1

    async def request(number: int) -> None:
        emit(emitter, str(number))
        await emitter.durable()

    later = [asyncio.create_task(request(number)) for number in range(10)]
    await asyncio.sleep(0.05)
    assert not first.done()
    gate.set()
    await asyncio.gather(first, *later)
    assert on_disk(tmp_path / "spool") == ["first", *(str(number) for number in range(10))]
    assert syncs.count == 2  # one for the first, one shared by the ten


async def test_a_failed_sync_counts_for_nothing(
    emitter: EventEmitter, syncs: Hold, caplog: pytest.LogCaptureFixture
) -> None:
    syncs.error = OSError(errno.EIO, "injected")
    emit(emitter, "0")
    with caplog.at_level(logging.WARNING, logger="sfmesh.events"):
        await emitter.durable()  # refused: logged, and returns
        assert syncs.count == 1
        await emitter.durable()  # nothing new emitted, but the segment is synced again
        assert syncs.count == 2
        assert any("written again" in r.getMessage() for r in caplog.records)


async def test_answers_leave_once_their_events_are_on_disk(
    channel: grpc.aio.Channel, syncs: Hold, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    write = method(channel, "Write")

    async def request(number: int) -> None:
        await write(str(number).encode(), timeout=10)
        assert str(number) in on_disk(spool_dir)  # before the 50 ms sync could run

    await asyncio.gather(*(request(number) for number in range(50)))
    assert syncs.count < 50  # concurrent requests shared commits

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await method(channel, "Refuse")(b"refusal", timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "refusal" in on_disk(spool_dir)  # an error answer waits too

    stream = channel.unary_stream(f"/{SERVICE}/Watch")(b"watched", timeout=10)
    async for _ in stream:
        assert on_disk(spool_dir)[-1].startswith("watched-")  # each message waits
    assert on_disk(spool_dir)[-2:] == ["watched-0", "watched-1"]


@pytest.mark.parametrize("stage", ["appends", "syncs"])
async def test_reads_answer_at_once_even_while_a_write_commits(
    channel: grpc.aio.Channel, stage: str, request: pytest.FixtureRequest
) -> None:
    disk: Hold = request.getfixturevalue(stage)
    gate = disk.gate = threading.Event()
    writing = asyncio.ensure_future(method(channel, "Write")(b"written", timeout=20))
    await asyncio.sleep(0.1)
    assert disk.count == 1  # the write's commit is held at the gate
    assert not writing.done()  # and the write waits for it
    read = method(channel, "Read")
    async with asyncio.timeout(5):
        await asyncio.gather(*(read(b"", timeout=10) for _ in range(100)))
    assert disk.holding  # the loop served the reads while the commit was held
    assert not writing.done()
    gate.set()
    await writing
    assert disk.count == 1  # the hundred reads wrote and synced nothing


async def test_a_spool_the_disk_refuses_is_logged_and_requests_still_answer(
    channel: grpc.aio.Channel,
    emitter: EventEmitter,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool_dir = tmp_path / "spool"
    shutil.rmtree(spool_dir)  # every segment file's open now fails
    with caplog.at_level(logging.WARNING, logger="sfmesh.events"):
        for number in range(3):
            await method(channel, "Write")(str(number).encode(), timeout=10)
        refused = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(refused) == 1  # once per outage, not once per request
        assert "cannot write the event spool" in refused[0].getMessage()

        spool_dir.mkdir()
        await method(channel, "Write")(b"3", timeout=10)
        assert any("written again" in r.getMessage() for r in caplog.records)
    assert on_disk(spool_dir) == ["0", "1", "2", "3"]  # kept in memory, written at last
    assert emitter.unacknowledged == 4


async def test_a_hung_sync_holds_answers_no_longer_than_the_bound(
    channel: grpc.aio.Channel,
    syncs: Hold,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "DURABLE_TIMEOUT", 0.3)
    gate = syncs.gate = threading.Event()  # the disk hangs in fdatasync
    write = method(channel, "Write")
    with caplog.at_level(logging.WARNING, logger="sfmesh.events"):
        async with asyncio.timeout(4):  # the hang lasts 10 s
            for number in range(3):
                await write(str(number).encode(), timeout=10)
        assert syncs.holding  # all three answered while the sync hangs
        assert syncs.count == 1  # they waited on that one commit, never cancelled
        refused = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(refused) == 1  # once per outage
        assert "not synced within 0.3 s" in refused[0].fields["error"]  # type: ignore[attr-defined]

        gate.set()
        await write(b"3", timeout=10)
        assert any("written again" in r.getMessage() for r in caplog.records)
    assert on_disk(tmp_path / "spool") == ["0", "1", "2", "3"]
