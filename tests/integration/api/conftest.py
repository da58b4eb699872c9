"""What several api integration tests need."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.api.clients.events import Events
from services.common.config import MeshConfig
from services.common.main import service_authority, service_emitter
from services.common.tokens import InternalCredentials
from services.common.transport import Transport

NO_EVENTLOG = "127.0.0.1:1"


@pytest.fixture
async def events(tmp_path: Path) -> AsyncIterator[Events]:
    """The api's events; no eventlog runs here, so they stay spooled."""
    authority = service_authority(tmp_path, Transport())
    mesh = MeshConfig(tmp_path, etcd=(), api="", scheduler="", eventlog=NO_EVENTLOG)
    emitter = service_emitter(mesh, "api-test", authority)
    await emitter.start()
    yield Events(
        emitter, NO_EVENTLOG, InternalCredentials(authority, "api-test"), transport=Transport()
    )
    await emitter.close(timeout=0)
