"""The Shaken Fist in-guest agent's protocol v1 (reference §5.2-§5.4), host
side, pure: frames to and from bytes, the messages the host sends, and what
the agent's messages mean for an instance's `agent_state`. No I/O, no clock.

**Framing.** A frame is `*SFv001*[NNNNNNNN]` (18 bytes: the preamble, an
8-digit zero-padded decimal body length in brackets) and then that many
bytes of JSON, one object with a `command`. The agent (Python's json with
its default ASCII escaping) counts characters, which are bytes as long as
the JSON stays ASCII-escaped (quirk 19); `encode` escapes so, and the
reader counts bytes.

**Reading.** `FrameReader.feed` takes whatever arrived and answers the
whole frames it completes. As the agent does, bytes before a preamble are
dropped. Unlike it, a header whose length is not eight digits is dropped
and the search goes on past its preamble (the agent would raise), and a
body longer than the reader's limit is skipped as it arrives rather than
held, so a guest cannot make the host buffer 100 MB. A body that is not a
JSON object, or is too long, is answered as an `Undecodable` item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PREAMBLE = b"*SFv001*"
HEADER_BYTES = len(PREAMBLE) + 10
"""The preamble, `[`, eight digits, `]`."""
MAX_BODY_BYTES = 99_999_999
"""What eight digits can say."""
DEFAULT_READ_LIMIT = 16 * 1024 * 1024
"""The longest body the host takes in (the agent's frames are chunks of
1 KiB files and command outputs)."""
_LENGTH = re.compile(rb"\[(\d{8})\]")

Message = dict[str, Any]
"""One decoded frame: a JSON object."""

# Commands (reference §5.3).
PING = "ping"
PONG = "pong"
AGENT_START = "agent-start"
AGENT_STOP = "agent-stop"
IS_SYSTEM_RUNNING = "is-system-running"
IS_SYSTEM_RUNNING_RESPONSE = "is-system-running-response"
GATHER_FACTS = "gather-facts"
GATHER_FACTS_RESPONSE = "gather-facts-response"
JSON_DECODE_FAILURE = "json-decode-failure"
ERROR_REPLIES = frozenset({"command-error", "unknown-command", JSON_DECODE_FAILURE})
"""The agent's answers to a command it could not run; they carry no `unique`."""

# agent_state values (reference §5.4).
NO_CONTACT = "not ready (no contact)"
AGENT_STARTUP = "not ready (agent startup)"
AGENT_TOO_OLD = "not ready (agent too old)"
AGENT_STOPPED = "not ready (agent stopped)"
UNRESPONSIVE = "not ready (unresponsive)"
INSTANCE_PAUSED = "not ready (instance paused)"
INSTANCE_POWERED_OFF = "not ready (instance powered off)"
READY = "ready"
READY_DEGRADED = "ready (degraded)"
MINIMUM_VERSION = (0, 3, 16)
"""The oldest agent the host works with (reference §5.4)."""


class FrameTooLong(ValueError):
    """A message whose JSON would not fit a frame's eight digits."""


@dataclass(frozen=True)
class Undecodable:
    """A frame whose body is not a JSON object, or too long to take in."""

    reason: str
    """Why, for logs and the agent's `json-decode-failure`."""


def encode(message: Mapping[str, Any]) -> bytes:
    """One frame holding `message` as ASCII-escaped JSON, with the agent's
    own separators. Raises FrameTooLong past 99,999,999 bytes."""
    body = json.dumps(message, ensure_ascii=True).encode("ascii")
    if len(body) > MAX_BODY_BYTES:
        raise FrameTooLong(f"a frame holds at most {MAX_BODY_BYTES} bytes, not {len(body)}")
    return b"%s[%08d]%s" % (PREAMBLE, len(body), body)


class FrameReader:
    """Turns the bytes of one connection into messages, in order."""

    def __init__(self, *, limit: int = DEFAULT_READ_LIMIT) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._skipping = 0
        """Bytes of an over-long body still to drop as they arrive."""

    def feed(self, data: bytes) -> list[Message | Undecodable]:
        """Take `data`; answer the frames it completes."""
        self._buffer += data
        found: list[Message | Undecodable] = []
        while True:
            if self._skipping:
                dropped = min(self._skipping, len(self._buffer))
                del self._buffer[:dropped]
                self._skipping -= dropped
                if self._skipping:
                    return found
            start = self._buffer.find(PREAMBLE)
            if start < 0:
                # Keep what may be the start of a preamble split across reads.
                del self._buffer[: max(0, len(self._buffer) - len(PREAMBLE) + 1)]
                return found
            del self._buffer[:start]
            if len(self._buffer) < HEADER_BYTES:
                return found
            length = _LENGTH.fullmatch(self._buffer, len(PREAMBLE), HEADER_BYTES)
            if length is None:
                del self._buffer[: len(PREAMBLE)]  # not a header: look further on
                continue
            size = int(length.group(1))
            if size > self._limit:
                del self._buffer[:HEADER_BYTES]
                self._skipping = size
                found.append(Undecodable(f"a frame of {size} bytes is over {self._limit}"))
                continue
            if len(self._buffer) < HEADER_BYTES + size:
                return found
            body = bytes(self._buffer[HEADER_BYTES : HEADER_BYTES + size])
            del self._buffer[: HEADER_BYTES + size]
            found.append(decode(body))


def decode(body: bytes) -> Message | Undecodable:
    """One frame's body as a message, or why it is not one."""
    try:
        message = json.loads(body)
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        return Undecodable(f"failed to JSON decode packet: {exc}")
    if not isinstance(message, dict):
        return Undecodable("the packet is not a JSON object")
    return message


# Messages the host sends.


def ping(unique: int | str) -> Message:
    return {"command": PING, "unique": unique}


def pong(unique: object) -> Message:
    """The answer to the agent's ping, echoing its `unique`."""
    return {"command": PONG, "unique": unique}


def is_system_running(unique: str) -> Message:
    return {"command": IS_SYSTEM_RUNNING, "unique": unique}


def gather_facts(unique: str) -> Message:
    return {"command": GATHER_FACTS, "unique": unique}


def json_decode_failure(reason: str) -> Message:
    """What the host answers a frame it could not decode (as the agent does)."""
    return {"command": JSON_DECODE_FAILURE, "message": reason}


# What the agent's messages say.


def is_ready(agent_state: str | None) -> bool:
    """Whether an agent in this state takes operations: `ready` and `ready
    (degraded)` (reference §5.4)."""
    return agent_state is not None and agent_state.startswith(READY)


def system_state(reply: Mapping[str, Any]) -> str:
    """The agent_state an `is-system-running-response` means: `ready` when
    the guest's init says running, `ready (degraded)` when it says degraded,
    else `not ready (<what it says>)`."""
    said = str(reply.get("message", "")).strip()
    if reply.get("result") is True:
        return READY
    if said == "degraded":
        return READY_DEGRADED
    return f"not ready ({said or 'unknown'})"


def start_state(message: Mapping[str, Any]) -> str:
    """The agent_state after an `agent-start`: starting up, or too old when
    its `message` ("version X.Y.Z") names a version below 0.3.16 (Shaken
    Fist [B] compares the prefixed string and never finds one, quirk 6). An
    unreadable version is given the benefit of the doubt."""
    version = agent_version(message)
    if version is not None and version < MINIMUM_VERSION:
        return AGENT_TOO_OLD
    return AGENT_STARTUP


def agent_version(message: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The version an `agent-start` announces, or None when unreadable."""
    said = str(message.get("message", ""))
    matched = re.fullmatch(r"version (\d+(?:\.\d+)*)\S*", said.strip())
    if matched is None:
        return None
    return tuple(int(part) for part in matched.group(1).split("."))


def boot_time(message: Mapping[str, Any]) -> float | None:
    """The guest's boot time a message carries (`system_boot_time`, epoch
    seconds), or None."""
    value = message.get("system_boot_time")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
