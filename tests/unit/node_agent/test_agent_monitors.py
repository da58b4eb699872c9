"""services/node_agent/agent_monitors.py, its pure parts: which instances get a
monitor, and how a report lands in a record (reference §5.4)."""

from __future__ import annotations

import pytest
from sfmesh.v1 import instance_pb2, records_pb2

from services.common import instance_states as states
from services.node_agent.agent_monitor import AgentReport
from services.node_agent.agent_monitors import IDLE, Intent, apply_report, intent

ON = instance_pb2.POWER_STATE_ON
OFF = instance_pb2.POWER_STATE_OFF
PAUSED = instance_pb2.POWER_STATE_PAUSED


def instance(
    state: int = states.CREATED, power: int = ON, channels: tuple[str, ...] = ("sf-agent",)
) -> instance_pb2.Instance:
    return instance_pb2.Instance(uuid="u", state=state, power_state=power, side_channels=channels)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "wanted"),
    [
        (instance(), Intent(monitored=True)),
        (instance(power=OFF), Intent(False, "not ready (instance powered off)", OFF)),
        (instance(power=PAUSED), Intent(False, "not ready (instance paused)", PAUSED)),
        (instance(power=instance_pb2.POWER_STATE_CRASHED), IDLE),
        (instance(channels=()), IDLE),
        (instance(power=OFF, channels=()), IDLE),
        (instance(state=states.CREATING), IDLE),
        (instance(state=states.DELETE_WAIT), IDLE),
        (instance(state=states.ERROR), IDLE),
        (None, IDLE),
    ],
)
def test_intent(given: instance_pb2.Instance | None, wanted: Intent) -> None:
    assert intent(given) == wanted


def record(**changes: object) -> records_pb2.InstanceRecord:
    return records_pb2.InstanceRecord(instance=instance(**changes))  # type: ignore[arg-type]


def test_a_report_lands_with_the_agent_s_times() -> None:
    written = record()
    assert apply_report(written, AgentReport("not ready (agent startup)", 1.5, 1700.0), ON)
    assert written.instance.agent_state == "not ready (agent startup)"
    assert written.instance.agent_start_time == 1.5
    assert written.instance.agent_system_boot_time == 1700.0


def test_a_state_alone_keeps_the_times() -> None:
    written = record()
    apply_report(written, AgentReport("not ready (agent startup)", 1.5, 1700.0), ON)
    assert apply_report(written, AgentReport("ready"), ON)
    assert written.instance.agent_state == "ready"
    assert written.instance.agent_start_time == 1.5


def test_the_same_state_is_no_change() -> None:
    written = record()
    apply_report(written, AgentReport("ready"), ON)
    assert not apply_report(written, AgentReport("ready"), ON)


def test_a_monitor_s_report_does_not_land_once_powered_off() -> None:
    written = record(power=OFF)
    assert not apply_report(written, AgentReport("not ready (unresponsive)"), ON)
    assert not written.instance.HasField("agent_state")
    assert apply_report(written, AgentReport("not ready (instance powered off)"), OFF)


def test_nothing_lands_without_the_channel_or_once_deleting() -> None:
    assert not apply_report(record(channels=()), AgentReport("ready"), ON)
    assert not apply_report(record(state=states.DELETE_WAIT), AgentReport("ready"), ON)
