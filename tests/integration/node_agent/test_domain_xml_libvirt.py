"""services/node_agent/domain_xml.py against the real libvirtd (qemu:///system):
libvirt defines what we render for every bus, firmware and NIC model, NICs
attach to a real bridge, and a boot sector boots from each bus under TCG.

Every file qemu touches lives in `qemu_tmp` (qemu runs as libvirt-qemu);
domain names are unique per run and every domain is removed in a finally."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import libvirt
import pytest

from services.node_agent.domain_xml import (
    NIC_MODELS,
    QEMU_NS,
    VIDEO_MODELS,
    DiskDevice,
    DomainSpec,
    Firmware,
    Graphics,
    NicDevice,
    SideChannel,
    graphics_port_clash,
    render_domain,
    with_graphics_port,
)

OVMF = Path("/usr/share/OVMF")
MARKER = b"SFMESH-TEST-BOOT\r\n"
DECOY = b"SFMESH-WRONG-DISK\r\n"
BOOT_TIMEOUT_S = 10.0


def image(message: bytes) -> bytes:
    """A 1 MiB raw disk whose boot sector writes message to COM1 and halts.
    Smaller disks boot from IDE only: SeaBIOS skips AHCI, SCSI, USB, virtio
    and NVMe disks smaller than one CHS cylinder (16 heads x 63 sectors)."""
    return boot_sector(message).ljust(1 << 20, b"\0")


def boot_sector(message: bytes) -> bytes:
    """512 bytes of x86 real-mode code, loaded at 0x7c00, that writes message
    to COM1 port by port and halts."""
    message_at = 0x7C00 + 23  # the code below is 23 bytes long
    code = bytes(
        [
            0x31, 0xC0,  # xor ax, ax
            0x8E, 0xD8,  # mov ds, ax
            0xBE, message_at & 0xFF, message_at >> 8,  # mov si, message
            0xBA, 0xF8, 0x03,  # mov dx, 0x3f8 (COM1)
            0xFC,  # cld
            0xAC,  # next: lodsb
            0x84, 0xC0,  # test al, al
            0x74, 0x03,  # jz stop
            0xEE,  # out dx, al
            0xEB, 0xF8,  # jmp next
            0xFA,  # stop: cli
            0xF4,  # hlt
            0xEB, 0xFC,  # jmp stop
        ]
    )  # fmt: skip
    assert len(code) == 23
    return (code + message + b"\0").ljust(510, b"\0") + b"\x55\xaa"


def make_spec(folder: Path, **changes: Any) -> DomainSpec:
    """A small TCG q35 domain with a unique name, its console in folder."""
    instance = str(uuid.uuid4())
    base = DomainSpec(
        name=f"sfmesh-test-{instance}",
        uuid=instance,
        cpus=1,
        memory_mib=64,
        virt_type="qemu",
        machine="q35",
        disks=(),
        nics=(),
        video_model="vga",
        video_vram_kib=16384,
        console_log=folder / "console.log",
    )
    return dataclasses.replace(base, **changes)


def disks(folder: Path, *buses_and_kinds: str) -> tuple[DiskDevice, ...]:
    """Disks named like `sata` or `sata:cdrom`; images need not exist to define."""
    found = []
    for number, item in enumerate(buses_and_kinds):
        bus, _, kind = item.partition(":")
        kind = kind or "disk"
        fmt = "raw" if kind == "cdrom" else "qcow2"
        found.append(DiskDevice(folder / f"disk{number}.{fmt}", bus, kind, fmt))
    return tuple(found)


def uefi(folder: Path, secure: bool) -> Firmware:
    """OVMF firmware, with Microsoft's secure-boot keys enrolled when secure."""
    if secure:
        code, variables = "OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"
    else:
        code, variables = "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"
    return Firmware(OVMF / code, folder / "nvram.fd", OVMF / variables, secure)


@pytest.fixture(scope="module")
def conn() -> Iterator[libvirt.virConnect]:
    try:
        connection = libvirt.open("qemu:///system")
    except libvirt.libvirtError as error:
        pytest.fail(f"libvirtd is not reachable ({error}); run: bash scripts/setup-host.sh")
    yield connection
    connection.close()


@pytest.fixture
def bridge() -> Iterator[str]:
    """A host bridge of its own, deleted afterwards; skips where none can be made."""
    name = f"sfmt{uuid.uuid4().hex[:8]}"
    made = subprocess.run(
        ["ip", "link", "add", name, "type", "bridge"], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create a bridge: {made.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=True)


@contextmanager
def defined(conn: libvirt.virConnect, xml: str) -> Iterator[libvirt.virDomain]:
    """Define a persistent domain; destroy and undefine it (NVRAM too) after."""
    domain = conn.defineXML(xml)
    try:
        yield domain
    finally:
        if domain.isActive():
            domain.destroy()
        domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


def targets(xml: str) -> list[tuple[str | None, str | None]]:
    found = ET.fromstring(xml).iterfind("devices/disk/target")
    return sorted((t.get("dev"), t.get("bus")) for t in found)


@pytest.mark.parametrize(
    ("machine", "buses", "firmware", "video"),
    [
        pytest.param("pc", ("virtio", "virtio"), None, "vga", id="virtio"),
        pytest.param("q35", ("sata", "sata:cdrom"), None, "vga", id="sata"),
        pytest.param("q35", ("scsi", "scsi:cdrom"), None, "vga", id="scsi"),
        pytest.param("q35", ("usb", "usb:cdrom"), None, "vga", id="usb"),
        pytest.param("pc", ("ide", "ide:cdrom", "ide", "ide"), None, "vga", id="ide"),
        pytest.param("q35", ("nvme", "virtio", "nvme"), None, "vga", id="nvme-q35"),
        pytest.param("pc", ("nvme",), None, "vga", id="nvme-pc"),
        pytest.param(
            "q35",
            ("virtio", "sata:cdrom", "scsi", "usb", "nvme", "sata", "virtio"),
            None,
            "vga",
            id="mixed",
        ),
        pytest.param("pc", ("virtio",), "uefi", "vga", id="uefi-pc"),
        pytest.param("q35", ("sata",), "uefi", "vga", id="uefi-q35"),
        pytest.param("q35", ("virtio", "sata:cdrom"), "secure", "vga", id="secure-boot-q35"),
        pytest.param("pc", (), None, "cirrus", id="cirrus-pc"),
        pytest.param("q35", (), None, "qxl", id="qxl-q35"),
        pytest.param("pc", (), None, "virtio", id="virtio-video-pc"),
        pytest.param("q35", (), None, "bochs", id="bochs-q35"),
        pytest.param("q35", (), None, "ramfb", id="ramfb-q35"),
        pytest.param("pc", (), None, "none", id="no-video-pc"),
    ],
)
def test_libvirt_defines_what_we_render(
    conn: libvirt.virConnect,
    qemu_tmp: Path,
    machine: str,
    buses: tuple[str, ...],
    firmware: str | None,
    video: str,
) -> None:
    spec = make_spec(
        qemu_tmp,
        machine=machine,
        disks=disks(qemu_tmp, *buses),
        firmware=None if firmware is None else uefi(qemu_tmp, secure=firmware == "secure"),
        video_model=video,
    )
    xml = render_domain(spec)
    with defined(conn, xml) as domain:
        kept = domain.XMLDesc()
        assert domain.name() == spec.name and domain.UUIDString() == spec.uuid
        assert targets(kept) == targets(xml)
        root = ET.fromstring(kept)
        nvme = sum(d.bus == "nvme" for d in spec.disks)
        overridden = root.findall(f"{{{QEMU_NS}}}override/{{{QEMU_NS}}}device")
        assert len(overridden) == nvme
        if spec.firmware is not None:
            assert root.findtext("os/loader") == str(spec.firmware.loader)
            assert (root.find("features/smm") is not None) == spec.firmware.secure_boot
        model = root.find("devices/video/model")
        assert model is not None and model.get("type") == spec.video_model


@pytest.mark.parametrize("vram", [4096, 262144])
@pytest.mark.parametrize("model", sorted(VIDEO_MODELS))
def test_every_video_model_starts(
    conn: libvirt.virConnect, qemu_tmp: Path, model: str, vram: int
) -> None:
    """QEMU starts with each card at both ends of the video memory the api
    lets through (bochs-display wants 4 to 256 MiB, VGA at least 1 MiB)."""
    spec = make_spec(qemu_tmp, machine="pc", video_model=model, video_vram_kib=vram)
    with defined(conn, render_domain(spec)) as domain:
        domain.create()
        assert domain.isActive()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("kind", "concurrent", "machine"),
    [("vnc", False, "pc"), ("spice", False, "q35"), ("spice", True, "pc")],
)
def test_every_console_starts_on_its_port_and_listens(
    conn: libvirt.virConnect, qemu_tmp: Path, kind: str, concurrent: bool, machine: str
) -> None:
    port = free_port()
    graphics = Graphics(kind, port, "127.0.0.1", concurrent=concurrent)
    spec = make_spec(qemu_tmp, machine=machine, graphics=graphics)
    with defined(conn, render_domain(spec)) as domain:
        domain.create()
        live = ET.fromstring(domain.XMLDesc())
        element = live.find("devices/graphics")
        assert element is not None
        assert (element.get("type"), element.get("port")) == (kind, str(port))
        assert element.get("tlsPort") is None
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        stream = conn.newStream(0)
        chunks: list[bytes] = []
        domain.screenshot(stream, 0, 0)
        stream.recvAll(lambda _s, data, _o: chunks.append(data), None)
        stream.finish()
        assert b"".join(chunks).startswith(b"\x89PNG")  # libvirt 9.0 asks QEMU 7.2 for PNG


def test_a_taken_port_fails_the_start_recognisably_and_moves(
    conn: libvirt.virConnect, qemu_tmp: Path
) -> None:
    for kind in ("vnc", "spice"):
        taken = free_port()
        spec = make_spec(qemu_tmp, graphics=Graphics(kind, taken, "127.0.0.1"))
        with defined(conn, render_domain(spec)) as domain:
            with socket.create_server(("127.0.0.1", taken)):
                with pytest.raises(libvirt.libvirtError) as refused:
                    domain.create()
                assert graphics_port_clash(str(refused.value.get_error_message())), kind
                flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
                port = free_port()
                conn.defineXML(with_graphics_port(domain.XMLDesc(flags), port))
                domain.create()
            element = ET.fromstring(domain.XMLDesc()).find("devices/graphics")
            assert element is not None and element.get("port") == str(port)


@pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="no /dev/kvm")
def test_libvirt_defines_kvm_with_host_passthrough(
    conn: libvirt.virConnect, qemu_tmp: Path
) -> None:
    spec = make_spec(qemu_tmp, virt_type="kvm", disks=disks(qemu_tmp, "virtio"))
    with defined(conn, render_domain(spec)) as domain:
        root = ET.fromstring(domain.XMLDesc())
        assert root.get("type") == "kvm"
        cpu = root.find("cpu")
        assert cpu is not None and cpu.get("mode") == "host-passthrough"


@pytest.mark.parametrize("machine", ["pc", "q35"])
def test_every_nic_model_attaches_to_a_bridge(
    conn: libvirt.virConnect, qemu_tmp: Path, bridge: str, machine: str
) -> None:
    nics = tuple(
        NicDevice(f"52:54:00:aa:00:{number:02x}", model, bridge)
        for number, model in enumerate(sorted(NIC_MODELS))
    )
    spec = make_spec(qemu_tmp, machine=machine, nics=nics)
    with defined(conn, render_domain(spec)) as domain:
        domain.create()
        root = ET.fromstring(domain.XMLDesc())
        macs = [m.get("address") for m in root.iterfind("devices/interface/mac")]
        models = [m.get("type") for m in root.iterfind("devices/interface/model")]
        assert list(zip(macs, models, strict=True)) == [(n.mac, n.model) for n in nics]
        taps = {t.get("dev") for t in root.iterfind("devices/interface/target")}
        ports = subprocess.run(
            ["ip", "-json", "link", "show", "master", bridge],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert {port["ifname"] for port in json.loads(ports)} == taps


@pytest.mark.parametrize(
    ("bus", "machine"),
    [
        ("virtio", "pc"),
        ("ide", "pc"),
        ("sata", "q35"),
        ("scsi", "q35"),
        ("usb", "q35"),
        ("nvme", "q35"),
    ],
)
def test_boots_from_the_first_disk(
    conn: libvirt.virConnect, qemu_tmp: Path, bus: str, machine: str
) -> None:
    """The first disk boots although a bootable virtio disk follows it. With
    NVMe first this needs its `<boot order>`: libvirt lists the virtio disk
    (`vda`) before the NVMe one (`vdb`) and, left to itself, boots the decoy."""
    first, second = qemu_tmp / "first.raw", qemu_tmp / "second.raw"
    first.write_bytes(image(MARKER))
    second.write_bytes(image(DECOY))
    spec = make_spec(
        qemu_tmp,
        machine=machine,
        disks=(DiskDevice(first, bus, "disk", "raw"), DiskDevice(second, "virtio", "disk", "raw")),
    )
    domain = conn.createXML(render_domain(spec))
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while MARKER not in _read(spec.console_log) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _read(spec.console_log) == MARKER
    finally:
        domain.destroy()


def test_a_side_channel_socket_is_made_for_qemu_in_a_folder_it_cannot_write(
    conn: libvirt.virConnect, qemu_tmp: Path
) -> None:
    """libvirt binds the sf-agent socket itself (the instance folder is
    root's, 0755, as the builder makes it) and a client on the host can
    connect to it while the domain runs (reference §5.1)."""
    folder = qemu_tmp / "instance"
    folder.mkdir(mode=0o755)
    channel = SideChannel("sf-agent", folder / "sc-sf-agent")
    spec = make_spec(qemu_tmp, machine="pc", side_channels=(channel,))
    domain = conn.createXML(render_domain(spec))
    try:
        root = ET.fromstring(domain.XMLDesc())
        target = root.find("devices/channel/target")
        assert target is not None and target.get("name") == "sf-agent"
        assert target.get("type") == "virtio"
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(channel.socket))
    finally:
        domain.destroy()


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""
