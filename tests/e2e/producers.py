"""Producer processes for the eventlog's end-to-end tests: each a real
`EventEmitter` with a disk spool, emitting a burst and then waiting until
the eventlog has acknowledged every event (replaying across outages)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sfmesh.v1 import event_pb2

from services.common.events import EventEmitter
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.transport import Transport


def credentials(state_dir: Path) -> InternalCredentials:
    """The internal identity, signed with the service key in `state_dir`."""
    key = (state_dir / "service.key").read_text().strip()
    return InternalCredentials(TokenAuthority(internal_secret=key), "e2e-test")


def produce(
    address: str,
    state_dir: str,
    spool: str,
    subject: str,
    share: int,
    index: int,
    pause_every: int = 10,
) -> None:
    """One producer process: emit `share` events on object `test/subject`
    (messages `p<index> e<number>`), pausing 10 ms every `pause_every`, then
    wait until the eventlog at `address` has acknowledged every one of them."""

    async def run() -> None:
        emitter = EventEmitter(
            address=address,
            producer_id=f"e2e-producer-{index}",
            spool_dir=Path(spool),
            fqdn="e2e",
            credentials=credentials(Path(state_dir)).metadata,
            transport=Transport(),
        )
        await emitter.start()
        for number in range(share):
            emitter.emit("test", subject, event_pb2.EVENT_TYPE_STATUS, f"p{index} e{number}")
            if number % pause_every == 0:
                await asyncio.sleep(0.01)
        assert await emitter.flushed(timeout=120), "events left unacknowledged"
        await emitter.close()

    asyncio.run(run())
