"""The in-guest agent end to end (reference §5.4): the agent test guest
(guests/agentguest: the real shakenfist-agent 0.3.18 on its sf-agent
virtio-serial port) created over REST goes `ready` through the node agent's
monitor, shows `not ready (instance powered off)` once powered off, and
`ready` again after powering on; a guest without an agent stays `not ready
(no contact)`, and one without the channel keeps a null agent_state."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from guests.agentguest import ensure_agent_guest
from guests.serve import ImageServer
from tests.e2e.test_vms import created, events_of, view, wait_for

pytestmark = pytest.mark.slow

BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "guests"
READY_TIMEOUT = 300.0
"""Seconds from create to `ready`: ~25 s under TCG on an idle machine (python
starting in the guest is most of it); room for a busy one."""
NO_CONTACT = "not ready (no contact)"
POWERED_OFF = "not ready (instance powered off)"


@pytest.fixture(scope="module")
def agent_guest_url(image_server: ImageServer) -> str:
    """The agent guest's raw image, served on loopback."""
    image = ensure_agent_guest(BUILD_DIR)
    return image_server.publish("agentguest.raw", image.read_bytes())


def agent_state(rest: httpx.Client, uuid: str) -> str | None:
    state = view(rest, uuid)["agent_state"]
    assert state is None or isinstance(state, str)
    return state


def test_the_agent_goes_ready_and_not_ready_when_powered_off(
    rest: httpx.Client, agent_guest_url: str
) -> None:
    asked = time.monotonic()
    before = time.time()
    instance = created(rest, "agent-guest", memory=512, disk=[{"size": 1, "base": agent_guest_url}])
    uuid = instance["uuid"]
    assert instance["state"] == "created", instance.get("error_message")
    assert instance["side_channels"] == ["sf-agent"]
    wait_for(lambda: agent_state(rest, uuid) == "ready", timeout=READY_TIMEOUT)
    print(f"\nagent guest: create -> agent ready {time.monotonic() - asked:.1f} s")
    ready = view(rest, uuid)
    assert before <= ready["agent_start_time"] <= time.time()
    first_boot = ready["agent_system_boot_time"]
    assert isinstance(first_boot, float) and first_boot > 0

    assert rest.post(f"/instances/{uuid}/poweroff").status_code == 200
    wait_for(lambda: agent_state(rest, uuid) == POWERED_OFF, timeout=30)

    # On again: the monitor starts over, the guest boots anew (its boot
    # time changes: a reboot the instance's events record).
    assert rest.post(f"/instances/{uuid}/poweron").status_code == 200
    wait_for(lambda: agent_state(rest, uuid) == "ready", timeout=READY_TIMEOUT)
    assert view(rest, uuid)["agent_system_boot_time"] != first_boot
    assert "reboot detected" in events_of(rest, uuid)
    assert rest.delete(f"/instances/{uuid}").status_code == 200


def test_without_an_agent_the_state_stays_not_ready_or_null(rest: httpx.Client) -> None:
    """The boot-sector guest runs no agent: with the channel (the default)
    its state is `not ready (no contact)` and stays so past the 15 s an
    agent once heard has to answer; without it, agent_state stays null."""
    silent = created(rest, "agentless")
    bare = created(rest, "channelless", side_channels=[])
    assert silent["state"] == bare["state"] == "created"
    assert bare["side_channels"] == []
    wait_for(lambda: agent_state(rest, silent["uuid"]) == NO_CONTACT, timeout=30)
    time.sleep(20)
    assert agent_state(rest, silent["uuid"]) == NO_CONTACT
    assert agent_state(rest, bare["uuid"]) is None

    for instance in (silent, bare):
        assert rest.post(f"/instances/{instance['uuid']}/poweroff").status_code == 200
    wait_for(lambda: agent_state(rest, silent["uuid"]) == POWERED_OFF, timeout=30)
    assert agent_state(rest, bare["uuid"]) is None
    for instance in (silent, bare):
        assert rest.delete(f"/instances/{instance['uuid']}").status_code == 200


def test_an_unknown_side_channel_is_refused(rest: httpx.Client) -> None:
    body = {"name": "x", "cpus": 1, "memory": 128, "disk": [{"size": 1}]}
    reply = rest.post("/instances", json={**body, "side_channels": ["sf-agent2"]})
    assert reply.status_code == 400
    assert reply.json()["error"] == "sf-agent2 is not a known side channel type"
