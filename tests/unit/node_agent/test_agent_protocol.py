"""services/node_agent/agent_protocol.py: frames (reference §5.2), messages
(§5.3) and what they mean for agent_state (§5.4)."""

from __future__ import annotations

import json

import pytest

from services.node_agent import agent_protocol as protocol
from services.node_agent.agent_protocol import FrameReader, Undecodable


def frame(body: bytes) -> bytes:
    return b"*SFv001*[%08d]%s" % (len(body), body)


# Writing.


def test_encode_is_the_agent_s_own_framing() -> None:
    # The reference's example: default separators, the length in brackets.
    assert protocol.encode({"command": "ping", "unique": 12345}) == (
        b'*SFv001*[00000036]{"command": "ping", "unique": 12345}'
    )


def test_encode_escapes_to_ascii_so_the_length_counts_bytes() -> None:
    # Quirk 19: the agent counts characters; escaped, they are bytes.
    encoded = protocol.encode({"command": "execute", "command-line": "echo héllo ✓"})
    body = encoded[protocol.HEADER_BYTES :]
    assert body.isascii()
    assert int(encoded[9:17]) == len(body)
    assert json.loads(body)["command-line"] == "echo héllo ✓"


def test_encode_refuses_what_eight_digits_cannot_say() -> None:
    with pytest.raises(protocol.FrameTooLong):
        protocol.encode({"chunk": "x" * protocol.MAX_BODY_BYTES})


# Reading.


def test_a_frame_in_one_read() -> None:
    assert FrameReader().feed(protocol.encode({"command": "pong", "unique": 7})) == [
        {"command": "pong", "unique": 7}
    ]


def test_frames_split_anywhere_and_run_together() -> None:
    stream = b"".join(
        protocol.encode({"command": "ping", "unique": n}) for n in range(5)
    ) + protocol.encode({"command": "agent-start", "message": "version 0.3.18"})
    for size in (1, 2, 7, 17, 18, 19, 50, len(stream)):
        reader = FrameReader()
        found = []
        for offset in range(0, len(stream), size):
            found += reader.feed(stream[offset : offset + size])
        assert [message["command"] for message in found] == ["ping"] * 5 + ["agent-start"]  # type: ignore[index]


def test_bytes_before_a_preamble_are_dropped() -> None:
    reader = FrameReader()
    assert reader.feed(b"boot noise *SF") == []
    assert reader.feed(b"v001*[00000002]{}") == [{}]


def test_a_header_that_is_not_eight_digits_is_skipped() -> None:
    good = protocol.encode({"command": "ping", "unique": 1})
    assert FrameReader().feed(b"*SFv001*[0000x036]" + good) == [{"command": "ping", "unique": 1}]
    assert FrameReader().feed(b"*SFv001*00000036" + good) == [{"command": "ping", "unique": 1}]


def test_a_body_that_is_not_a_json_object_is_undecodable() -> None:
    found = FrameReader().feed(frame(b"{nope") + frame(b"[1, 2]") + frame(b"\xff\xfe"))
    assert all(isinstance(item, Undecodable) for item in found)
    assert len(found) == 3
    assert "JSON" in found[0].reason  # type: ignore[union-attr]


def test_a_body_over_the_limit_is_skipped_as_it_arrives() -> None:
    reader = FrameReader(limit=100)
    big = frame(b'{"x": "' + b"y" * 200 + b'"}')
    after = protocol.encode({"command": "pong", "unique": 3})
    found = reader.feed(big[:50])
    assert found == [Undecodable("a frame of 209 bytes is over 100")]
    assert reader.feed(big[50:150]) == []
    assert reader.feed(big[150:] + after) == [{"command": "pong", "unique": 3}]


def test_an_incomplete_frame_waits() -> None:
    reader = FrameReader()
    encoded = protocol.encode({"command": "ping", "unique": 9})
    assert reader.feed(encoded[:-1]) == []
    assert reader.feed(encoded[-1:]) == [{"command": "ping", "unique": 9}]


# Messages.


def test_host_messages() -> None:
    assert protocol.ping(5) == {"command": "ping", "unique": 5}
    assert protocol.pong("a") == {"command": "pong", "unique": "a"}
    assert protocol.is_system_running("u") == {"command": "is-system-running", "unique": "u"}
    assert protocol.gather_facts("u") == {"command": "gather-facts", "unique": "u"}
    assert protocol.json_decode_failure("bad") == {
        "command": "json-decode-failure",
        "message": "bad",
    }


# agent_state.


@pytest.mark.parametrize(
    ("reply", "state"),
    [
        ({"result": True, "message": "running"}, "ready"),
        ({"result": False, "message": "degraded"}, "ready (degraded)"),
        ({"result": False, "message": "starting"}, "not ready (starting)"),
        ({"result": False, "message": "stopping\n"}, "not ready (stopping)"),
        ({"result": False}, "not ready (unknown)"),
    ],
)
def test_system_state(reply: dict[str, object], state: str) -> None:
    assert protocol.system_state(reply) == state


@pytest.mark.parametrize(
    ("state", "ready"),
    [
        ("ready", True),
        ("ready (degraded)", True),
        ("not ready (no contact)", False),
        ("not ready (instance powered off)", False),
        (None, False),
    ],
)
def test_is_ready(state: str | None, ready: bool) -> None:
    assert protocol.is_ready(state) is ready


@pytest.mark.parametrize(
    ("message", "state"),
    [
        ("version 0.3.18", "not ready (agent startup)"),
        ("version 0.3.16", "not ready (agent startup)"),
        ("version 1.0.1", "not ready (agent startup)"),
        ("version 0.3.15", "not ready (agent too old)"),
        ("version 0.2", "not ready (agent too old)"),
        ("version 0.4.0.dev3", "not ready (agent startup)"),
        ("something else", "not ready (agent startup)"),
    ],
)
def test_start_state_checks_the_version(message: str, state: str) -> None:
    # Quirk 6: Shaken Fist's check never fires; this one does.
    assert protocol.start_state({"command": "agent-start", "message": message}) == state


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1700000000.5, 1700000000.5), (1700000000, 1700000000.0), ("1", None), (True, None)],
)
def test_boot_time(value: object, expected: float | None) -> None:
    assert protocol.boot_time({"system_boot_time": value}) == expected
    assert protocol.boot_time({}) is None
