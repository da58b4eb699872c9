"""Where the node agent relays a console from (`console_relay.console_address`). Pure."""

from __future__ import annotations

import pytest
from sfmesh.v1 import instance_pb2

from services.common import errors
from services.node_agent.console_relay import console_address
from services.node_agent.graphics_ports import GraphicsSettings

SETTINGS = GraphicsSettings()


def vnc(port: int | None = 24010, vdi: int = instance_pb2.VDI_TYPE_VNC) -> instance_pb2.Instance:
    made = instance_pb2.Instance(uuid="u")
    made.video.vdi = vdi  # type: ignore[assignment]
    if port is not None:
        made.vdi_port = port
    return made


def test_the_instance_s_own_port_at_the_console_listen_address() -> None:
    assert console_address(vnc(), SETTINGS) == ("127.0.0.1", 24010)
    node = GraphicsSettings(listen="192.0.2.7")
    assert console_address(vnc(), node) == ("192.0.2.7", 24010)


def test_a_wildcard_listen_is_reached_on_loopback() -> None:
    assert console_address(vnc(), GraphicsSettings(listen="0.0.0.0")) == ("127.0.0.1", 24010)
    assert console_address(vnc(), GraphicsSettings(listen="::")) == ("::1", 24010)


@pytest.mark.parametrize(
    ("made", "kind"),
    [
        (vnc(port=None), errors.NotReady),
        (vnc(vdi=instance_pb2.VDI_TYPE_SPICE), errors.Conflict),
        (vnc(port=13010), errors.Conflict),  # the api's port: never outside the range
        (vnc(port=22), errors.Conflict),
    ],
)
def test_refusals(made: instance_pb2.Instance, kind: type[errors.SfmeshError]) -> None:
    with pytest.raises(kind):
        console_address(made, SETTINGS)
