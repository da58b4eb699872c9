"""The emitter's stream session: stopping it is final, whenever it comes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from services.common.event_stream import EventStream
from services.common.spool import Entry, Spool


class SlowToUnwindCall:
    """A `Record` call whose read takes a while to unwind when cancelled, so
    a stop can arrive while the stream waits for its reader to finish."""

    def __init__(self, unwinding: asyncio.Event) -> None:
        self._unwinding = unwinding

    async def write(self, data: bytes) -> None:
        return None

    async def read(self) -> Any:
        try:
            await asyncio.Event().wait()  # no acknowledgement ever comes
        except asyncio.CancelledError:
            self._unwinding.set()
            await asyncio.sleep(0.5)
            raise

    def cancel(self) -> bool:
        return True


class Channel:
    """Hands out one `SlowToUnwindCall` per stream."""

    def __init__(self, unwinding: asyncio.Event) -> None:
        self._unwinding = unwinding

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return lambda metadata: SlowToUnwindCall(self._unwinding)


async def test_a_stop_while_the_reader_unwinds_ends_the_sender(tmp_path: Path) -> None:
    # The stream gives up on a missing acknowledgement, cancels its reader
    # and waits for it; a stop arriving then used to be swallowed with the
    # reader's cancellation, and the sender reconnected forever.
    unwinding = asyncio.Event()
    stream = EventStream(
        producer_id="test",
        spool=Spool(tmp_path),
        credentials=lambda: (),
        batch_max=10,
        flush_interval=0,
        ack_timeout=0.05,
    )
    stream.add(Entry(1, b"event"))
    sender = asyncio.create_task(stream.run(Channel(unwinding)))  # type: ignore[arg-type]
    await asyncio.wait_for(unwinding.wait(), 5)
    sender.cancel()
    done, _ = await asyncio.wait([sender], timeout=3)
    assert sender in done and sender.cancelled()
