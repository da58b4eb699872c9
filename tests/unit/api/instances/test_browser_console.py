"""What a browser console needs of an instance (`browser_console.check_console`). Pure."""

from __future__ import annotations

import pytest
from sfmesh.v1 import instance_pb2

from services.api.instances.browser_console import check_console
from services.common import errors
from services.common import instance_states as states

UUID = "8a1c1e2e-0000-4000-8000-000000000002"


def instance(
    *,
    vdi: int = instance_pb2.VDI_TYPE_VNC,
    port: int | None = 24002,
    state: int = states.CREATED,
    power: int = instance_pb2.POWER_STATE_ON,
) -> instance_pb2.Instance:
    made = instance_pb2.Instance(uuid=UUID, state=state, power_state=power)  # type: ignore[arg-type]
    made.video.vdi = vdi  # type: ignore[assignment]
    if port is not None:
        made.vdi_port = port
    return made


def test_a_running_vnc_instance_with_a_port_has_a_browser_console() -> None:
    check_console(instance())


@pytest.mark.parametrize(
    ("made", "kind", "reason"),
    [
        (instance(state=states.CREATING, port=None), errors.NotReady, "NOT_READY"),
        (instance(state=states.ERROR), errors.NotReady, "NOT_READY"),
        (instance(power=instance_pb2.POWER_STATE_OFF), errors.NotReady, "NOT_RUNNING"),
        (instance(port=None), errors.Conflict, "NO_CONSOLE_PORT"),
        (instance(vdi=instance_pb2.VDI_TYPE_SPICE), errors.Conflict, "CONSOLE_NOT_VNC"),
        (instance(vdi=instance_pb2.VDI_TYPE_UNSPECIFIED), errors.Conflict, "CONSOLE_NOT_VNC"),
    ],
)
def test_what_refuses_it(
    made: instance_pb2.Instance, kind: type[errors.SfmeshError], reason: str
) -> None:
    with pytest.raises(kind) as caught:
        check_console(made)
    assert caught.value.reason == reason
