"""services/node_agent/agent_monitor.py against a scripted agent on a real
UNIX socket (the role qemu's channel socket plays): the states of reference
§5.4, liveness, and host commands with their deadlines. The real agent in a
real guest is tests/e2e/test_agent.py's."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.node_agent.agent_monitor import (
    AgentGone,
    AgentMonitor,
    AgentRefused,
    AgentReport,
    AgentTimeout,
    AgentUnavailable,
    Timings,
)
from tests.integration.node_agent.fake_agent import FakeAgent, start_agent

FAST = Timings(
    connect_retry=0.05,
    ping_after=0.3,
    unresponsive_after=0.8,
    ask_before_contact=30.0,
    ask_while_not_ready=0.3,
    write_timeout=1.0,
    tick=0.05,
)


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[FakeAgent]:
    fake = FakeAgent(tmp_path / "sc-sf-agent")
    await fake.start()
    yield fake
    await fake.stop()


class Watched:
    """A monitor under test and what it reported."""

    def __init__(self, path: Path, timings: Timings) -> None:
        self.reports: list[AgentReport] = []
        self.reported = asyncio.Event()
        self.monitor = AgentMonitor("i-1", path, self._report, timings=timings)

    def _report(self, report: AgentReport) -> None:
        self.reports.append(report)
        self.reported.set()

    def states(self) -> list[str]:
        return [report.state for report in self.reports]

    async def until(self, state: str, within: float = 3.0) -> None:
        async with asyncio.timeout(within):
            while self.monitor.state != state:
                self.reported.clear()
                await self.reported.wait()


@contextlib.asynccontextmanager
async def watching(path: Path, timings: Timings = FAST) -> AsyncIterator[Watched]:
    watched = Watched(path, timings)
    task = asyncio.create_task(watched.monitor.run())
    try:
        yield watched
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ready(agent: FakeAgent, watched: Watched) -> None:
    await start_agent(agent)
    await agent.answer_system()
    await watched.until("ready")


async def test_no_contact_then_startup_then_ready_with_facts(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        # Asked at once on connecting; nobody answers yet.
        await agent.expect("is-system-running")
        assert watched.states() == ["not ready (no contact)"]
        before = time.time()
        await start_agent(agent)
        assert (await agent.expect("pong"))["unique"] == 4242
        await watched.until("not ready (agent startup)")
        started = watched.reports[-1]
        assert started.boot_time == 1700000000.0
        assert started.start_time is not None and before <= started.start_time <= time.time()
        await agent.answer_system()  # asked again at once after agent-start
        await watched.until("ready")
        facts = await agent.expect("gather-facts")
        await agent.send(
            {
                "command": "gather-facts-response",
                "result": {"distribution": {"id": "x"}, "mounts": [], "ssh-host-keys": {}},
                "unique": facts["unique"],
            }
        )
        for _ in range(200):
            if watched.monitor.facts is not None:
                break
            await asyncio.sleep(0.01)
        assert watched.monitor.facts["distribution"] == {"id": "x"}
        assert watched.states() == [
            "not ready (no contact)",
            "not ready (agent startup)",
            "ready",
        ]


@pytest.mark.parametrize(
    ("running", "said", "state"),
    [(False, "degraded", "ready (degraded)"), (False, "starting", "not ready (starting)")],
)
async def test_what_the_guest_init_says(
    agent: FakeAgent, running: bool, said: str, state: str
) -> None:
    async with watching(agent.path) as watched:
        await start_agent(agent)
        await agent.answer_system(running=running, said=said)
        await watched.until(state)
        assert watched.monitor.ready is state.startswith("ready")


async def test_a_guest_starting_up_is_asked_again_until_ready(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await start_agent(agent)
        await agent.answer_system(running=False, said="starting")
        await watched.until("not ready (starting)")
        await agent.answer_system()  # asked again by itself
        await watched.until("ready")


async def test_an_old_agent_is_too_old(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await agent.send({"command": "agent-start", "message": "version 0.3.15", "unique": "1"})
        await watched.until("not ready (agent too old)")
        await agent.answer_system()
        await asyncio.sleep(0.2)
        assert watched.monitor.state == "not ready (agent too old)"


async def test_silence_pings_then_unresponsive_then_back(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        await agent.expect("ping", within=2)  # 0.3 s of silence
        await watched.until("not ready (unresponsive)")
        await agent.answer_system()  # asked again while not ready
        await watched.until("ready")


async def test_an_agent_never_heard_stays_no_contact(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await agent.expect("is-system-running")
        await asyncio.sleep(1.2)  # past unresponsive_after
        assert watched.states() == ["not ready (no contact)"]
        assert agent.received.empty()  # no pings, no questions until 30 s


async def test_agent_stop(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        await agent.send({"command": "agent-stop", "system_boot_time": 1.0, "unique": "2"})
        await watched.until("not ready (agent stopped)")


async def test_no_socket_is_no_contact_and_it_connects_once_there(tmp_path: Path) -> None:
    path = tmp_path / "sc-sf-agent"
    async with watching(path) as watched:
        await asyncio.sleep(0.2)
        assert watched.states() == ["not ready (no contact)"]
        fake = FakeAgent(path)
        await fake.start()
        try:
            await ready(fake, watched)
        finally:
            await fake.stop()


async def test_a_lost_connection_is_made_again(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        agent.hang_up()
        await agent.answer_system()  # the new connection asks at once
        assert agent.connections == 2
        await asyncio.sleep(0.2)
        assert watched.monitor.state == "ready"


async def test_an_undecodable_frame_is_answered(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        await agent.send_bytes(b"*SFv001*[00000005]{nope")
        failure = await agent.expect("json-decode-failure")
        assert "failed to JSON decode packet" in failure["message"]


# Host commands.


async def test_call_answers_the_reply_with_its_unique(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        command = {"command": "execute", "command-line": "true", "unique": "agentop:u:0"}
        calling = asyncio.create_task(watched.monitor.call(command, within=3))
        sent = await agent.expect("execute")
        assert sent == command
        # Another reply first (a stale one): not this command's.
        await agent.send({"command": "execute-response", "unique": "agentop:other:0"})
        await agent.send({"command": "execute-response", "result": True, "unique": "agentop:u:0"})
        assert (await calling)["result"] is True


async def test_call_gives_a_unique_when_none(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        calling = asyncio.create_task(watched.monitor.call({"command": "chmod"}, within=3))
        sent = await agent.expect("chmod")
        assert sent["unique"]
        await agent.send({"command": "chmod-response", "unique": sent["unique"]})
        assert (await calling)["command"] == "chmod-response"


async def test_an_error_reply_answers_the_command_in_flight(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        calling = asyncio.create_task(watched.monitor.call({"command": "nope"}, within=3))
        await agent.expect("nope")
        await agent.send({"command": "unknown-command", "message": "nope is an unknown command"})
        with pytest.raises(AgentRefused, match="nope is an unknown command"):
            await calling


async def test_a_call_has_a_deadline_and_the_agent_stays_ready(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        started = time.monotonic()
        with pytest.raises(AgentTimeout):
            await watched.monitor.call({"command": "execute", "command-line": "x"}, within=0.3)
        assert time.monotonic() - started < 1.0


async def test_a_long_command_is_not_unresponsiveness(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        calling = asyncio.create_task(watched.monitor.call({"command": "execute"}, within=5))
        sent = await agent.expect("execute")
        await asyncio.sleep(1.2)  # past unresponsive_after, busy
        assert watched.monitor.state == "ready"
        await agent.send({"command": "execute-response", "unique": sent["unique"]})
        await calling


async def test_commands_take_turns_and_the_wait_counts(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        first = asyncio.create_task(watched.monitor.call({"command": "a"}, within=3))
        await agent.expect("a")
        with pytest.raises(AgentTimeout, match="another command"):
            await watched.monitor.call({"command": "b"}, within=0.2)
        first.cancel()


async def test_exchange_yields_every_reply(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        got = []

        async def fetch() -> None:
            message = {"command": "get-file", "path": "/x", "unique": "agentop:g:0"}
            async with watched.monitor.exchange(message, within=3) as replies:
                while True:
                    reply = await replies.next(idle=1)
                    got.append(reply)
                    if reply.get("chunk", "") is None:
                        return

        fetching = asyncio.create_task(fetch())
        await agent.expect("get-file")
        for chunk in ("aGk=", "aG8=", None):
            await agent.send(
                {"command": "get-file-response", "chunk": chunk, "unique": "agentop:g:0"}
            )
        await fetching
        assert [reply["chunk"] for reply in got] == ["aGk=", "aG8=", None]


async def test_a_restarting_agent_fails_the_command(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        calling = asyncio.create_task(watched.monitor.call({"command": "execute"}, within=3))
        await agent.expect("execute")
        await start_agent(agent, boot_time=1700000100.0)
        with pytest.raises(AgentGone, match="restarted"):
            await calling


async def test_a_lost_connection_fails_the_command(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        await ready(agent, watched)
        calling = asyncio.create_task(watched.monitor.call({"command": "execute"}, within=3))
        await agent.expect("execute")
        agent.hang_up()
        with pytest.raises(AgentGone):
            await calling


async def test_no_connection_is_unavailable(tmp_path: Path) -> None:
    async with watching(tmp_path / "absent") as watched:
        with pytest.raises(AgentUnavailable):
            await watched.monitor.call({"command": "execute"}, within=1)


async def test_wait_ready(agent: FakeAgent) -> None:
    async with watching(agent.path) as watched:
        waiting = asyncio.create_task(watched.monitor.wait_ready())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await ready(agent, watched)
        async with asyncio.timeout(1):
            await waiting
