"""services/node_agent/graphics_ports.py: which console port an instance gets."""

from __future__ import annotations

import random
import socket

import pytest
from sfmesh.v1 import instance_pb2, records_pb2

from services.node_agent.domain_xml import Graphics
from services.node_agent.graphics_ports import (
    GraphicsPorts,
    GraphicsSettings,
    NoFreePort,
    choose_port,
    cleared,
    parse_ports,
    port_free,
    ports_held,
    vdi_kind,
    viewer_host,
)

VNC = instance_pb2.VDI_TYPE_VNC


def instance(uuid: str, port: int | None = None, vdi: int = 0) -> instance_pb2.Instance:
    made = instance_pb2.Instance(uuid=uuid)
    made.video.vdi = vdi  # type: ignore[assignment]
    if port is not None:
        made.vdi_port = port
    return made


def record_of(made: instance_pb2.Instance) -> records_pb2.InstanceRecord:
    return records_pb2.InstanceRecord(instance=made)


@pytest.mark.parametrize(
    ("text", "ports"),
    [("24000-31999", range(24000, 32000)), ("5900-5900", range(5900, 5901))],
)
def test_parse_ports(text: str, ports: range) -> None:
    assert parse_ports(text) == ports


@pytest.mark.parametrize("text", ["24000", "5000-6000", "7000-6000", "6000-70000", "a-b", ""])
def test_parse_ports_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="port range"):
        parse_ports(text)


@pytest.mark.parametrize(
    ("vdi", "kind"),
    [
        (instance_pb2.VDI_TYPE_VNC, "vnc"),
        (instance_pb2.VDI_TYPE_SPICE, "spice"),
        (instance_pb2.VDI_TYPE_SPICECONCURRENT, "spice"),
        (instance_pb2.VDI_TYPE_UNSPECIFIED, "spice"),
    ],
)
def test_vdi_kind(vdi: instance_pb2.VdiType, kind: str) -> None:
    assert vdi_kind(vdi) == kind


def test_ports_held_by_others() -> None:
    others = [instance("a", 24001), instance("b"), instance("c", 24003)]
    others[2].vdi_tls_port = 24004
    assert ports_held(others, besides="c") == {24001}
    assert ports_held(others, besides="x") == {24001, 24003, 24004}


def test_choose_port_from_start_wrapping_round() -> None:
    span = range(100, 105)
    assert choose_port(set(), span, 2) == 102
    assert choose_port({102, 103}, span, 2) == 104
    assert choose_port({102, 103, 104}, span, 2) == 100
    assert choose_port(set(), span, 0, lambda port: port != 100) == 101


def test_choose_port_when_all_are_taken() -> None:
    with pytest.raises(NoFreePort, match="100-101"):
        choose_port({100}, range(100, 102), 0, lambda port: port != 101)


@pytest.mark.parametrize(
    ("listen", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("192.0.2.4", "192.0.2.4"),
        ("0.0.0.0", "198.51.100.9"),
        ("::", "198.51.100.9"),
    ],
)
def test_viewer_host(listen: str, host: str) -> None:
    assert viewer_host(listen, "198.51.100.9:13020") == host


def test_viewer_host_of_an_ipv6_advertise() -> None:
    assert viewer_host("::", "[2001:db8::1]:13020") == "2001:db8::1"


def ports(hosted: list[instance_pb2.Instance], **settings: object) -> GraphicsPorts:
    return GraphicsPorts(
        lambda: hosted,
        GraphicsSettings(**settings),  # type: ignore[arg-type]
        advertise="127.0.0.1:13020",
        free=lambda address, port: True,
        rng=random.Random(7),
    )


def test_twenty_instances_never_share_a_port() -> None:
    hosted = [instance(f"i{n}") for n in range(20)]
    chooser = ports(hosted, ports=range(24000, 24020))
    chosen = [chooser.choose(made.uuid) for made in hosted]  # no record shows them yet
    assert sorted(chosen) == list(range(24000, 24020))
    with pytest.raises(NoFreePort):
        chooser.choose("one-more")


def test_after_a_restart_the_records_hold_the_ports() -> None:
    hosted = [instance(f"i{n}", 24000 + n) for n in range(19)] + [instance("new")]
    fresh = ports(hosted, ports=range(24000, 24020))  # a new process: nothing chosen
    assert fresh.choose("new") == 24019


def test_choosing_again_gives_up_the_earlier_choice() -> None:
    hosted = [instance("a")]
    chooser = ports(hosted, ports=range(24000, 24002))
    first = chooser.choose("a")
    second = chooser.choose("a", avoid={first})
    assert {first, second} == {24000, 24001}
    hosted.append(instance("b"))
    assert chooser.choose("b") == first


def test_deleted_instances_free_their_ports() -> None:
    hosted = [instance("a"), instance("b")]
    chooser = ports(hosted, ports=range(24000, 24002))
    taken = {chooser.choose("a"), chooser.choose("b")}
    hosted[:] = [instance("b"), instance("c")]  # a deleted: no longer hosted
    assert chooser.choose("c") in taken


def test_ports_something_else_binds_are_skipped() -> None:
    chooser = GraphicsPorts(
        lambda: [],
        GraphicsSettings(ports=range(24000, 24003)),
        advertise="127.0.0.1:13020",
        free=lambda address, port: port == 24002,
        rng=random.Random(1),
    )
    assert chooser.choose("a") == 24002


def test_assign_and_device() -> None:
    chooser = GraphicsPorts(
        lambda: [],
        GraphicsSettings(listen="0.0.0.0"),
        advertise="192.0.2.8:13020",
        free=lambda address, port: True,
    )
    record = record_of(instance("a", vdi=VNC))
    assert chooser.device(record) is None
    chooser.assign(record, 24100)
    assert record.instance.vdi_port == 24100
    assert record.vdi_host == "192.0.2.8"
    assert not record.instance.HasField("vdi_tls_port")
    assert not record.instance.HasField("console_port")
    assert chooser.device(record) == Graphics("vnc", 24100, "0.0.0.0")
    record.instance.video.vdi = instance_pb2.VDI_TYPE_SPICECONCURRENT
    assert chooser.device(record) == Graphics("spice", 24100, "0.0.0.0", concurrent=True)
    cleared(record)
    assert not record.instance.HasField("vdi_port")
    assert record.vdi_host == ""


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_free("127.0.0.1", port)
    assert port_free("127.0.0.1", port)
