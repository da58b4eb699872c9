"""One instance's in-guest agent, watched from the host over its `sf-agent`
socket (reference §5.4): the connection, liveness, the agent_state its
messages mean, and host commands with their replies.

**Lifecycle.** `run` reports `not ready (no contact)`, connects to the
socket qemu listens on (again every second while it cannot), and asks
`is-system-running`. Until the agent has said anything the question is
asked again every 30 s only: qemu reads nothing from the socket while no
guest program holds the port open, so whatever the host writes waits in the
socket's buffer and reaches the agent, in order, when it starts; the agent
also announces itself (`agent-start`), which is asked again at once. Once
in contact: a ping after 5 s of silence, `not ready (unresponsive)` after
15 s (not while a command of the host's runs: its own deadline judges it),
and the question again every 5 s while the agent is not ready. Entering
ready asks for the guest's facts (kept here, not exposed). A lost
connection is made again after a second, and the state is `not ready (no
contact)` while it cannot be. Every write has a deadline; a socket that
takes no bytes for 10 s (a guest that stopped reading) is closed.

**Commands.** `call` (one reply) and `exchange` (several, such as a file's
chunks) run one host command at a time, each under a deadline that counts
the wait for its turn: the agent is single-threaded, and its error replies
(`command-error`, `unknown-command`, `json-decode-failure`) carry no
`unique`, so the command in flight is the one they answer. Replies are
matched by `unique`; the agent restarting (`agent-start`, `agent-stop`) or
the connection ending fails the command at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.node_agent import agent_protocol as protocol
from services.node_agent.agent_protocol import FrameReader, Message, Undecodable

log = logging.getLogger("sfmesh.node_agent.agent")
READ_BYTES = 65536
"""The most one read of the socket takes (the agent reads 4,096 at a time;
a file's chunks arrive faster taken in larger reads)."""


@dataclass(frozen=True)
class Timings:
    """The monitor's clock, in seconds (reference §5.4's, but where noted)."""

    connect_retry: float = 1.0
    """Between attempts to connect to the socket."""
    ping_after: float = 5.0
    """Silence after which the agent is pinged."""
    unresponsive_after: float = 15.0
    """Silence after which an agent once heard is `not ready (unresponsive)`."""
    ask_before_contact: float = 30.0
    """Between `is-system-running` questions before the agent said anything."""
    ask_while_not_ready: float = 5.0
    """Between questions to an agent in contact but not ready ([B]: only
    at start-up, every 30 s)."""
    write_timeout: float = 10.0
    """The longest a write may wait for the socket to take its bytes."""
    tick: float = 1.0
    """How often liveness is judged."""


@dataclass(frozen=True)
class AgentReport:
    """What the monitor learned that the instance record shows."""

    state: str
    """The new agent_state."""
    start_time: float | None = None
    """With an `agent-start`: when it arrived (host clock, epoch seconds)."""
    boot_time: float | None = None
    """With an `agent-start`: the guest's boot time (epoch seconds)."""


class AgentError(Exception):
    """A host command could not be carried out; the message says why."""


class AgentUnavailable(AgentError):
    """The monitor has no connection to the agent."""


class AgentTimeout(AgentError):
    """The command's deadline passed before its reply (or next reply)."""


class AgentGone(AgentError):
    """The connection ended, or the agent restarted, while the command ran."""


class AgentRefused(AgentError):
    """The agent answered the command with an error."""

    def __init__(self, message: str, reply: Message) -> None:
        super().__init__(message)
        self.reply = reply
        """The agent's error message (`command-error` and the like)."""


class Replies:
    """The replies to one host command, in order (`AgentMonitor.exchange`),
    and more frames of it (a file's chunks) sent in its turn."""

    def __init__(
        self,
        queue: asyncio.Queue[Message | AgentError],
        deadline: float,
        send: Callable[[Mapping[str, Any]], Awaitable[None]],
    ) -> None:
        self._queue = queue
        self._deadline = deadline
        self._send = send
        self._held: list[Message] = []

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send another frame of the command (a put's chunk); raises
        AgentUnavailable, or AgentTimeout past the deadline, and the error
        a reply brought meanwhile (the agent gone or refusing)."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, AgentError):
                raise item
            self._held.append(item)  # an early reply: `next` answers it
        if asyncio.get_running_loop().time() > self._deadline:
            raise AgentTimeout("the agent did not take the command in time")
        await self._send(message)

    async def next(self, *, idle: float | None = None) -> Message:
        """The next reply; raises AgentTimeout when the command's deadline,
        or `idle` seconds without a reply, pass first, and the other
        AgentErrors as they happen."""
        if self._held:
            return self._held.pop(0)
        loop = asyncio.get_running_loop()
        wait = self._deadline - loop.time()
        if idle is not None:
            wait = min(wait, idle)
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                item = await self._queue.get()
        except TimeoutError:
            raise AgentTimeout("the agent did not answer in time") from None
        if isinstance(item, AgentError):
            raise item
        return item


class AgentMonitor:
    """Watches one instance's agent while `run` runs."""

    def __init__(
        self,
        uuid: str,
        socket: Path,
        report: Callable[[AgentReport], None],
        *,
        timings: Timings | None = None,
    ) -> None:
        self.uuid = uuid
        self._socket = socket
        self._report = report
        self._timings = timings or Timings()
        self.state: str | None = None
        """The agent_state last reported."""
        self.facts: Any = None
        """What the agent's last `gather-facts-response` said (not exposed)."""
        self._writer: asyncio.StreamWriter | None = None
        self._ready = asyncio.Event()
        self._stopped = False
        """Whether `run` has ended: no state will change any more."""
        self._commands = asyncio.Lock()
        self._waiting: dict[object, asyncio.Queue[Message | AgentError]] = {}
        self._in_flight: object = None
        self._uniques = itertools.count(1)
        self._heard_at = 0.0
        self._contact = False
        self._pinged_at = 0.0
        self._asked_at = 0.0

    @property
    def ready(self) -> bool:
        """Whether the agent takes commands now (`ready`, `ready (degraded)`)."""
        return protocol.is_ready(self.state)

    async def wait_ready(self) -> None:
        """Return once the agent is ready (at once when it is). Raises
        AgentGone once the monitor stops (its instance deleted, powered off,
        paused): no agent will become ready through it."""
        while not self.ready:
            if self._stopped:
                raise AgentGone("the agent monitor stopped (the instance is not running)")
            await self._ready.wait()

    async def run(self) -> None:
        """Watch the agent until cancelled."""
        try:
            await self._watch()
        finally:
            self._stopped = True
            self._ready.set()  # wakes `wait_ready`, which sees the stop

    async def _watch(self) -> None:
        self._set(protocol.NO_CONTACT)
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(self._socket))
            except OSError:  # no socket yet, or qemu gone
                self._set(protocol.NO_CONTACT)
                await asyncio.sleep(self._timings.connect_retry)
                continue
            try:
                await self._serve(reader, writer)
            finally:
                self._writer = None
                self._fail_commands(AgentGone("the connection to the agent ended"))
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            await asyncio.sleep(self._timings.connect_retry)

    async def call(self, message: Mapping[str, Any], *, within: float) -> Message:
        """Send a host command and answer its reply, within `within` seconds
        (the wait for the command's turn included)."""
        async with self.exchange(message, within=within) as replies:
            return await replies.next()

    @contextlib.asynccontextmanager
    async def exchange(
        self, message: Mapping[str, Any], *, within: float
    ) -> AsyncIterator[Replies]:
        """Send a host command (given a `unique` when it has none) once no
        other runs, and yield its replies; the deadline, `within` seconds
        from now, covers the wait for its turn and every reply. Raises
        AgentUnavailable without a connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            async with asyncio.timeout(within):
                await self._commands.acquire()
        except TimeoutError:
            raise AgentTimeout("another command held the agent past the deadline") from None
        try:
            command = dict(message)
            unique = command.setdefault("unique", f"sfmesh:{next(self._uniques)}")
            queue: asyncio.Queue[Message | AgentError] = asyncio.Queue()
            self._waiting[unique] = queue
            self._in_flight = unique
            try:
                await self._send(command)
                yield Replies(queue, deadline, self._send)
            finally:
                self._waiting.pop(unique, None)
                self._in_flight = None
        finally:
            self._commands.release()

    # The connection.

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Talk over one connection until it ends."""
        loop = asyncio.get_running_loop()
        self._writer = writer
        self._contact = False
        self._heard_at = self._pinged_at = loop.time()
        frames = FrameReader()
        ticking = asyncio.create_task(self._tick(), name=f"agent-liveness-{self.uuid}")
        try:
            await self._ask()
            while data := await reader.read(READ_BYTES):
                for item in frames.feed(data):
                    await self._received(item)
        except (OSError, AgentUnavailable):
            pass
        finally:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking

    async def _tick(self) -> None:
        """Judge liveness, ping and ask again, every tick."""
        loop = asyncio.get_running_loop()
        timings = self._timings
        while True:
            await asyncio.sleep(timings.tick)
            now = loop.time()
            silent = now - self._heard_at
            busy = self._in_flight is not None
            try:
                if not self._contact:
                    if now - self._asked_at >= timings.ask_before_contact:
                        await self._ask()
                    continue
                if silent >= timings.unresponsive_after and not busy:
                    self._set(protocol.UNRESPONSIVE)
                if silent >= timings.ping_after and now - self._pinged_at >= timings.ping_after:
                    self._pinged_at = now
                    await self._send(protocol.ping(next(self._uniques) % 65536))
                if not self.ready and now - self._asked_at >= timings.ask_while_not_ready:
                    await self._ask()
            except AgentUnavailable:
                return  # the read loop sees the connection end

    async def _send(self, message: Mapping[str, Any]) -> None:
        """Write one frame, or give up on a connection that takes no bytes."""
        writer = self._writer
        if writer is None:
            raise AgentUnavailable("the agent is not connected")
        writer.write(protocol.encode(message))
        try:
            async with asyncio.timeout(self._timings.write_timeout):
                await writer.drain()
        except (TimeoutError, OSError) as exc:
            writer.close()  # the read loop ends; a new connection starts afresh
            raise AgentUnavailable(f"writing to the agent failed: {exc!r}") from None

    async def _ask(self) -> None:
        """Ask whether the guest is up (`is-system-running`)."""
        self._asked_at = asyncio.get_running_loop().time()
        await self._send(protocol.is_system_running(f"sfmesh:system:{next(self._uniques)}"))

    # What arrives.

    async def _received(self, item: Message | Undecodable) -> None:
        self._heard_at = asyncio.get_running_loop().time()
        self._contact = True
        if isinstance(item, Undecodable):
            log.warning("undecodable agent frame", extra=self._fields(reason=item.reason))
            self._answer_in_flight(AgentRefused(item.reason, {"message": item.reason}))
            await self._send(protocol.json_decode_failure(item.reason))
            return
        command = item.get("command")
        unique = item.get("unique")
        if command == protocol.PING:
            await self._send(protocol.pong(unique))
            return
        if command == protocol.PONG:
            return
        queue = self._waiting.get(unique) if isinstance(unique, str | int) else None
        if queue is not None:
            queue.put_nowait(item)
        elif command in protocol.ERROR_REPLIES:
            said = str(item.get("message", command))
            if not self._answer_in_flight(AgentRefused(said, item)):
                log.warning("agent error", extra=self._fields(reply=said))
        elif command == protocol.AGENT_START:
            self._fail_commands(AgentGone("the agent restarted"))
            self._set(
                protocol.start_state(item),
                start_time=time.time(),
                boot_time=protocol.boot_time(item),
            )
            await self._ask()
        elif command == protocol.AGENT_STOP:
            self._fail_commands(AgentGone("the agent stopped"))
            self._set(protocol.AGENT_STOPPED)
        elif command == protocol.IS_SYSTEM_RUNNING_RESPONSE:
            if self.state != protocol.AGENT_TOO_OLD:
                was_ready = self.ready
                self._set(protocol.system_state(item))
                if self.ready and not was_ready:
                    await self._send(protocol.gather_facts(f"sfmesh:facts:{next(self._uniques)}"))
        elif command == protocol.GATHER_FACTS_RESPONSE:
            self.facts = item.get("result")
        else:
            log.info("unexpected agent message", extra=self._fields(command=command))

    def _answer_in_flight(self, error: AgentError) -> bool:
        """Hand an error reply without `unique` to the command in flight."""
        queue = self._waiting.get(self._in_flight)
        if queue is None:
            return False
        queue.put_nowait(error)
        return True

    def _fail_commands(self, error: AgentError) -> None:
        for queue in self._waiting.values():
            queue.put_nowait(error)

    # agent_state.

    def _set(
        self, state: str, *, start_time: float | None = None, boot_time: float | None = None
    ) -> None:
        """Report a state (and an agent start's times) when it is news."""
        if state == self.state and start_time is None:
            return
        self.state = state
        if self.ready or self._stopped:
            self._ready.set()
        else:
            self._ready.clear()
        log.info("agent state", extra=self._fields(state=state))
        self._report(AgentReport(state, start_time=start_time, boot_time=boot_time))

    def _fields(self, **fields: object) -> dict[str, dict[str, object]]:
        return {"fields": {"instance": self.uuid, **fields}}
