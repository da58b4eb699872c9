"""The api's watch of an object's events (services/api/clients/events.py)
when its eventlog goes away: one eventlog on its SQLite file, killed with
SIGKILL and started again, and the watch goes on after its last cursor,
missing and repeating nothing; killed for good, and the watch ends with 503
once reopening has failed for `WATCH_RESUME_WINDOW`."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sfmesh.v1 import eventlog_service_pb2

from devmesh.postgres import free_port
from launcher.config import parse_config
from launcher.host import Host
from services.api.clients import events as events_module
from services.api.clients.events import Events
from services.common import errors
from services.common.events import EventEmitter
from services.common.secrets import load_or_create_secret
from services.common.transport import Transport
from tests.e2e.producers import credentials


@pytest.fixture
def eventlog(tmp_path: Path) -> Iterator[Host]:
    """One eventlog on SQLite in `tmp_path`, on a free port."""
    load_or_create_secret(tmp_path / "service.key")
    document = {
        "host": {"name": "eventlog", "roles": ["eventlog"], "state_dir": str(tmp_path)},
        "eventlog": {"listen": f"127.0.0.1:{free_port()}", "metrics_listen": ""},
    }
    host = Host(parse_config(document, hostname="eventlog"), sink=sys.stderr)
    host.start()
    yield host
    host.stop()


@pytest.fixture
async def reader(eventlog: Host, tmp_path: Path) -> AsyncIterator[Events]:
    """The api's events, emitting to and reading from that eventlog."""
    address = str(eventlog.config.listen("eventlog").local())
    emitter = EventEmitter(
        address=address,
        producer_id="watch-test",
        spool_dir=tmp_path / "spool",
        fqdn="test",
        credentials=credentials(tmp_path).metadata,
        transport=Transport(),
    )
    await emitter.start()
    events = Events(emitter, address, credentials(tmp_path), transport=Transport())
    yield events
    await events.close()
    await emitter.close(timeout=0)


async def test_a_watch_goes_on_across_a_restart_and_ends_when_the_eventlog_stays_away(
    eventlog: Host, reader: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = str(uuid.uuid4())
    query = eventlog_service_pb2.WatchRequest(object_type="test", object_uuid=subject)
    watch = reader.watch(query)
    seen: list[str] = []

    async def next_event() -> eventlog_service_pb2.WatchResponse:
        return await anext(watch)

    async def emit_and_see(numbers: range) -> None:
        for number in numbers:
            reader.audit(subject, f"e{number}", kind="test")
        for _ in numbers:
            item = await asyncio.wait_for(next_event(), 10)
            seen.append(item.event.message)

    first = asyncio.create_task(emit_and_see(range(5)))
    await asyncio.sleep(0.3)  # the watch is open before the first event
    await first
    monkeypatch.setattr(events_module, "WATCH_RESUME_WINDOW", 30.0)  # however slow the start
    await asyncio.to_thread(eventlog.stop_role, "eventlog", signal.SIGKILL)
    following = asyncio.create_task(emit_and_see(range(5, 10)))
    await asyncio.to_thread(eventlog.start_role, "eventlog")
    await following
    assert seen == [f"e{number}" for number in range(10)]

    monkeypatch.setattr(events_module, "WATCH_RESUME_WINDOW", 1.0)
    waiting = asyncio.create_task(next_event())
    await asyncio.sleep(0.3)
    await asyncio.to_thread(eventlog.stop_role, "eventlog", signal.SIGKILL)
    stopped = time.monotonic()
    with pytest.raises(errors.Unavailable):
        await asyncio.wait_for(waiting, 10)
    assert 0.8 <= time.monotonic() - stopped < 3.0
