"""A scripted in-guest agent for the agent monitor's tests: the guest's end of
the sf-agent channel, as a UNIX server in place of qemu's socket."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

from services.node_agent import agent_protocol as protocol
from services.node_agent.agent_protocol import FrameReader


class FakeAgent:
    """The guest's end of the channel: a UNIX server taking one connection
    at a time, recording what the host sends and sending what a test says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.connections = 0
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, str(self.path))

    async def stop(self) -> None:
        self.hang_up()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writer = writer
        frames = FrameReader()
        with contextlib.suppress(OSError):
            while data := await reader.read(4096):
                for item in frames.feed(data):
                    assert isinstance(item, dict)
                    self.received.put_nowait(item)

    def forget(self) -> None:
        """Drop what the host sent so far (questions of a past connection)."""
        while not self.received.empty():
            self.received.get_nowait()

    def hang_up(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_bytes(protocol.encode(message))

    async def send_bytes(self, data: bytes) -> None:
        for _ in range(100):
            if self._writer is not None:
                break
            await asyncio.sleep(0.02)
        assert self._writer is not None, "the monitor never connected"
        self._writer.write(data)
        await self._writer.drain()

    async def expect(self, command: str, *, within: float = 3.0) -> dict[str, Any]:
        """The next message of `command` the host sent (others skipped)."""
        async with asyncio.timeout(within):
            while True:
                message = await self.received.get()
                if message.get("command") == command:
                    return message

    async def answer_system(self, *, running: bool = True, said: str = "running") -> None:
        """Answer the host's next is-system-running."""
        question = await self.expect("is-system-running")
        await self.send(
            {
                "command": "is-system-running-response",
                "result": running,
                "message": said,
                "system_boot_time": 1700000000.0,
                "unique": question["unique"],
            }
        )


async def start_agent(agent: FakeAgent, boot_time: float = 1700000000.0) -> None:
    """What shakenfist-agent sends when it starts."""
    await agent.send(
        {
            "command": "agent-start",
            "message": "version 0.3.18",
            "system_boot_time": boot_time,
            "unique": str(time.time()),
        }
    )
    await agent.send({"command": "ping", "unique": 4242})
