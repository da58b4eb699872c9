"""What several api integration tests need."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.api.clients.events import Events
from services.common.config import MeshConfig
from services.common.events import EventEmitter
from services.common.main import service_authority, service_emitter
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport

NO_EVENTLOG = "127.0.0.1:1"


@pytest.fixture
def authority(tmp_path: Path) -> TokenAuthority:
    """The test api's token authority, its keys in `tmp_path`."""
    return service_authority(tmp_path, Transport())


@pytest.fixture
async def emitter(tmp_path: Path, authority: TokenAuthority) -> AsyncIterator[EventEmitter]:
    """The api's emitter; no eventlog runs here, so events stay spooled (and
    outbox entries stay in etcd)."""
    mesh = MeshConfig(tmp_path, etcd=(), api="", scheduler="", eventlog=NO_EVENTLOG)
    started = service_emitter(mesh, "api-test", authority)
    await started.start()
    yield started
    await started.close(timeout=0)


@pytest.fixture
async def events(authority: TokenAuthority, emitter: EventEmitter) -> Events:
    """The api's events, through `emitter`. Async: its channel is made on
    the test's event loop, whatever earlier tests left as the current one."""
    return Events(
        emitter, NO_EVENTLOG, InternalCredentials(authority, "api-test"), transport=Transport()
    )
