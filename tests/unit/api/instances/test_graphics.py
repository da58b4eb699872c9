"""services/api/instances/graphics.py: the virt-viewer file, and when there is none."""

from __future__ import annotations

import configparser

import pytest
from sfmesh.v1 import instance_pb2, records_pb2

from services.api.instances.graphics import viewer_type, virt_viewer_file
from services.common import errors
from services.common import instance_states as states

UUID = "8a1c1e2e-0000-4000-8000-000000000001"


def record(
    vdi: int, *, port: int | None = 24001, state: int = states.CREATED
) -> records_pb2.InstanceRecord:
    made = records_pb2.InstanceRecord(
        instance=instance_pb2.Instance(uuid=UUID, state=state),  # type: ignore[arg-type]
        vdi_host="192.0.2.5" if port else "",
    )
    made.instance.video.vdi = vdi  # type: ignore[assignment]
    if port is not None:
        made.instance.vdi_port = port
    return made


@pytest.mark.parametrize(
    ("vdi", "kind"),
    [
        (instance_pb2.VDI_TYPE_VNC, "vnc"),
        (instance_pb2.VDI_TYPE_SPICE, "spice"),
        (instance_pb2.VDI_TYPE_SPICECONCURRENT, "spice"),
        (instance_pb2.VDI_TYPE_UNSPECIFIED, "spice"),
    ],
)
def test_viewer_type(vdi: instance_pb2.VdiType, kind: str) -> None:
    assert viewer_type(vdi) == kind


def test_the_file_parses_with_the_console_s_keys() -> None:
    text = virt_viewer_file(record(instance_pb2.VDI_TYPE_SPICECONCURRENT))
    assert text.startswith("[virt-viewer]\n")
    assert text.endswith("\n")
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser.sections() == ["virt-viewer"]
    assert dict(parser["virt-viewer"]) == {
        "type": "spice",
        "host": "192.0.2.5",
        "port": "24001",
        "delete-this-file": "1",
    }  # no tls-port, host-subject nor ca: no TLS


@pytest.mark.parametrize("state", [states.INITIAL, states.PREFLIGHT, states.CREATING])
def test_no_port_while_built_is_not_ready(state: int) -> None:
    with pytest.raises(errors.NotReady, match=f"instance {UUID} is not ready"):
        virt_viewer_file(record(instance_pb2.VDI_TYPE_VNC, port=None, state=state))


@pytest.mark.parametrize("state", [states.ERROR, states.DELETED, states.CREATED])
def test_no_port_otherwise_is_a_conflict(state: int) -> None:
    with pytest.raises(errors.Conflict, match="has no graphical console port"):
        virt_viewer_file(record(instance_pb2.VDI_TYPE_VNC, port=None, state=state))
