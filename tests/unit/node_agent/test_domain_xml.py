"""services/node_agent/domain_xml.py: the rendered XML, parsed back and checked
device by device."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from services.node_agent.domain_xml import (
    QEMU_NS,
    DiskDevice,
    DomainSpec,
    Firmware,
    Graphics,
    NicDevice,
    SideChannel,
    device_names,
    graphics_port_clash,
    render_domain,
    with_graphics_port,
)

UUID = "4d1a2b3c-0000-4000-8000-00000000abcd"
OVMF = Path("/usr/share/OVMF")
UEFI = Firmware(
    loader=OVMF / "OVMF_CODE_4M.fd",
    nvram=Path("/state/instances/x/nvram.fd"),
    nvram_template=OVMF / "OVMF_VARS_4M.fd",
    secure_boot=False,
)
SECURE = Firmware(
    loader=OVMF / "OVMF_CODE_4M.secboot.fd",
    nvram=Path("/state/instances/x/nvram.fd"),
    nvram_template=OVMF / "OVMF_VARS_4M.ms.fd",
    secure_boot=True,
)
Q = f"{{{QEMU_NS}}}"
AGENT = SideChannel("sf-agent", Path("/state/instances/x/sc-sf-agent"))


def disk(bus: str, kind: str = "disk", fmt: str = "qcow2", readonly: bool = False) -> DiskDevice:
    return DiskDevice(Path(f"/images/{bus}-{kind}.img"), bus, kind, fmt, readonly)


def spec(**changes: object) -> DomainSpec:
    base = DomainSpec(
        name=f"sfmesh-node1-{UUID}",
        uuid=UUID,
        cpus=2,
        memory_mib=1024,
        virt_type="qemu",
        machine="pc",
        disks=(disk("virtio"),),
        nics=(),
        video_model="vga",
        video_vram_kib=16384,
        console_log=Path("/state/instances/x/console.log"),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def render(**changes: object) -> ET.Element:
    return ET.fromstring(render_domain(spec(**changes)))


def one(root: ET.Element, path: str) -> ET.Element:
    found = root.findall(path)
    assert len(found) == 1, f"{path}: {len(found)} elements"
    return found[0]


# Naming.


@pytest.mark.parametrize(
    ("buses", "names"),
    [
        ((), []),
        (("virtio", "virtio", "virtio"), ["vda", "vdb", "vdc"]),
        (("sata", "scsi", "usb", "sata"), ["sda", "sdb", "sdc", "sdd"]),
        (("ide", "ide"), ["hda", "hdb"]),
        (("nvme", "nvme"), ["nvme0n1", "nvme1n1"]),
        (
            ("virtio", "sata", "ide", "nvme", "virtio", "scsi", "ide", "nvme", "usb"),
            ["vda", "sda", "hda", "nvme0n1", "vdb", "sdb", "hdb", "nvme1n1", "sdc"],
        ),
    ],
)
def test_device_names_count_per_prefix(buses: tuple[str, ...], names: list[str]) -> None:
    assert device_names([disk(bus) for bus in buses]) == names


@pytest.mark.parametrize(("count", "last"), [(26, "vdz"), (27, "vdaa"), (53, "vdba")])
def test_device_names_go_past_z_like_libvirt(count: int, last: str) -> None:
    assert device_names([disk("virtio")] * count)[-1] == last


def test_targets_carry_names_and_buses() -> None:
    root = render(machine="pc", disks=(disk("ide"), disk("virtio"), disk("sata"), disk("usb")))
    targets = [(t.get("dev"), t.get("bus")) for t in root.iterfind("devices/disk/target")]
    assert targets == [("hda", "ide"), ("vda", "virtio"), ("sda", "sata"), ("sdb", "usb")]


# Disks.


@pytest.mark.parametrize(("kind", "fmt"), [("disk", "qcow2"), ("disk", "raw"), ("cdrom", "raw")])
def test_disk_element(kind: str, fmt: str) -> None:
    element = one(render(disks=(disk("sata", kind, fmt),)), "devices/disk")
    assert element.attrib == {"type": "file", "device": kind}
    assert one(element, "driver").attrib == {"name": "qemu", "type": fmt}
    assert one(element, "source").get("file") == f"/images/sata-{kind}.img"


@pytest.mark.parametrize(
    ("kind", "readonly", "expected"),
    [("disk", False, False), ("disk", True, True), ("cdrom", False, True), ("cdrom", True, True)],
)
def test_readonly_and_cdroms_always(kind: str, readonly: bool, expected: bool) -> None:
    element = one(render(disks=(disk("sata", kind, "raw", readonly),)), "devices/disk")
    assert (element.find("readonly") is not None) == expected


def test_boot_order_only_on_first_disk() -> None:
    root = render(disks=(disk("sata", "cdrom"), disk("virtio"), disk("nvme")))
    boots = [d.find("boot") for d in root.iterfind("devices/disk")]
    assert boots[0] is not None and boots[0].attrib == {"order": "1"}
    assert boots[1:] == [None, None]
    assert root.find("os/boot") is None


def test_no_disks() -> None:
    assert render(disks=()).find("devices/disk") is None


@pytest.mark.parametrize(("buses", "controllers"), [(("scsi", "scsi"), 1), (("sata", "usb"), 0)])
def test_scsi_gets_one_virtio_scsi_controller(buses: tuple[str, ...], controllers: int) -> None:
    root = render(disks=tuple(disk(bus) for bus in buses))
    found = root.findall("devices/controller[@type='scsi']")
    assert len(found) == controllers
    assert all(c.get("model") == "virtio-scsi" for c in found)


def test_nvme_is_a_virtio_disk_overridden_to_nvme() -> None:
    root = render(machine="q35", disks=(disk("virtio"), disk("nvme"), disk("nvme", fmt="raw")))
    disks = root.findall("devices/disk")
    assert [(one(d, "target").get("dev"), one(d, "target").get("bus")) for d in disks] == [
        ("vda", "virtio"),
        ("vdb", "virtio"),
        ("vdc", "virtio"),
    ]
    assert [d.find("alias") is None for d in disks] == [True, False, False]
    assert [one(d, "alias").get("name") for d in disks[1:]] == ["ua-nvme0", "ua-nvme1"]
    devices = one(root, f"{Q}override").findall(f"{Q}device")
    assert [d.get("alias") for d in devices] == ["ua-nvme0", "ua-nvme1"]
    for number, device in enumerate(devices):
        properties = {
            p.get("name"): (p.get("type"), p.get("value"))
            for p in one(device, f"{Q}frontend").iterfind(f"{Q}property")
        }
        assert properties == {"driver": ("string", "nvme"), "serial": ("string", f"nvme{number}")}


def test_no_override_without_nvme() -> None:
    text = render_domain(spec(disks=(disk("virtio"), disk("sata"))))
    assert QEMU_NS not in text


# Domain basics, firmware and CPU.


def test_domain_basics() -> None:
    root = render(virt_type="qemu", machine="q35")
    assert root.tag == "domain" and root.get("type") == "qemu"
    assert one(root, "name").text == f"sfmesh-node1-{UUID}"
    assert one(root, "uuid").text == UUID
    memory = one(root, "memory")
    assert (memory.text, memory.get("unit")) == ("1024", "MiB")
    assert one(root, "vcpu").text == "2"
    os_type = one(root, "os/type")
    assert (os_type.text, os_type.attrib) == ("hvm", {"arch": "x86_64", "machine": "q35"})
    assert [f.tag for f in one(root, "features")] == ["acpi", "apic"]
    assert {e: one(root, f"on_{e}").text for e in ("poweroff", "reboot", "crash")} == {
        "poweroff": "destroy",
        "reboot": "restart",
        "crash": "destroy",
    }


def test_bios_has_no_loader() -> None:
    root = render(firmware=None)
    assert root.find("os/loader") is None and root.find("os/nvram") is None


@pytest.mark.parametrize(("firmware", "machine"), [(UEFI, "pc"), (UEFI, "q35"), (SECURE, "q35")])
def test_uefi_loader_and_nvram(firmware: Firmware, machine: str) -> None:
    root = render(firmware=firmware, machine=machine)
    loader = one(root, "os/loader")
    assert loader.text == str(firmware.loader)
    assert (loader.get("readonly"), loader.get("type")) == ("yes", "pflash")
    nvram = one(root, "os/nvram")
    assert nvram.text == str(firmware.nvram)
    assert nvram.get("template") == str(firmware.nvram_template)
    secure = firmware.secure_boot
    assert loader.get("secure") == ("yes" if secure else None)
    smm = root.find("features/smm")
    assert (smm is not None and smm.get("state") == "on") == secure


@pytest.mark.parametrize(("virt_type", "cpu_mode"), [("kvm", "host-passthrough"), ("qemu", None)])
def test_cpu_passthrough_only_under_kvm(virt_type: str, cpu_mode: str | None) -> None:
    root = render(virt_type=virt_type)
    assert root.get("type") == virt_type
    cpu = root.find("cpu")
    assert (cpu.get("mode") if cpu is not None else None) == cpu_mode


# NICs, video, console.


@pytest.mark.parametrize(
    "model",
    ["virtio", "e1000", "e1000e", "rtl8139", "i82551", "i82557b", "i82559er", "ne2k_pci", "pcnet"],
)
def test_nic_models_reach_libvirt_by_their_wire_name(model: str) -> None:
    nic = NicDevice("52:54:00:12:34:56", model, "br-test")
    interface = one(render(nics=(nic,)), "devices/interface")
    assert interface.get("type") == "bridge"
    assert one(interface, "mac").get("address") == "52:54:00:12:34:56"
    assert one(interface, "source").get("bridge") == "br-test"
    assert one(interface, "model").get("type") == model


def test_nics_in_order() -> None:
    nics = tuple(NicDevice(f"52:54:00:00:00:0{i}", "virtio", f"br{i}") for i in range(3))
    root = render(nics=nics)
    assert [m.get("address") for m in root.iterfind("devices/interface/mac")] == [
        n.mac for n in nics
    ]


def test_no_interface_without_nics() -> None:
    assert render(nics=()).find("devices/interface") is None


@pytest.mark.parametrize(
    ("model", "vram"), [("vga", 16384), ("cirrus", 4096), ("qxl", 65536), ("bochs", 32768)]
)
def test_video(model: str, vram: int) -> None:
    root = render(video_model=model, video_vram_kib=vram)
    assert one(root, "devices/video/model").attrib == {"type": model, "vram": str(vram)}
    assert root.find("devices/graphics") is None


@pytest.mark.parametrize("model", ["virtio", "ramfb", "none"])
def test_video_models_without_vram(model: str) -> None:
    root = render(video_model=model, video_vram_kib=32768)
    assert one(root, "devices/video/model").attrib == {"type": model}


def test_serial_console_to_file() -> None:
    root = render(console_log=Path("/var/lib/sfmesh/instances/x/console.log"))
    serial = one(root, "devices/serial")
    assert serial.get("type") == "file"
    assert one(serial, "source").attrib == {
        "path": "/var/lib/sfmesh/instances/x/console.log",
        "append": "on",
    }
    assert one(serial, "target").get("port") == "0"
    console = one(root, "devices/console")
    assert console.get("type") == "file"
    assert one(console, "source").get("path") == "/var/lib/sfmesh/instances/x/console.log"
    assert one(console, "target").attrib == {"type": "serial", "port": "0"}


# Graphics.


def test_no_graphics_by_default() -> None:
    root = render()
    assert root.findall("devices/graphics") == []
    assert root.findall("devices/channel") == []


def test_vnc_on_one_address_and_port_without_password() -> None:
    root = render(graphics=Graphics("vnc", 24001, "127.0.0.1"))
    graphics = one(root, "devices/graphics")
    assert graphics.attrib == {
        "type": "vnc",
        "port": "24001",
        "autoport": "no",
        "listen": "127.0.0.1",
    }
    assert [child.attrib for child in graphics] == [{"type": "address", "address": "127.0.0.1"}]
    assert root.findall("devices/channel") == []


def test_spice_is_plain_with_its_agent_channel_and_no_usb_redirection() -> None:
    root = render(graphics=Graphics("spice", 24002, "192.0.2.7"))
    graphics = one(root, "devices/graphics")
    assert graphics.get("type") == "spice"
    assert graphics.get("port") == "24002"
    assert graphics.get("tlsPort") is None
    assert graphics.get("defaultMode") == "insecure"
    assert graphics.findall("channel") == []  # no channel forced onto TLS
    assert one(graphics, "listen").attrib == {"type": "address", "address": "192.0.2.7"}
    assert one(graphics, "image").get("compression") == "auto_glz"
    channel = one(root, "devices/channel")
    assert channel.get("type") == "spicevmc"
    assert one(channel, "target").attrib == {"type": "virtio", "name": "com.redhat.spice.0"}
    assert root.findall("devices/redirdev") == []
    assert root.find(f"{Q}commandline") is None


def test_concurrent_spice_lets_several_viewers_in() -> None:
    root = render(graphics=Graphics("spice", 24003, "127.0.0.1", concurrent=True))
    env = one(root, f"{Q}commandline/{Q}env")
    assert env.attrib == {"name": "SPICE_DEBUG_ALLOW_MC", "value": "1"}


def test_graphics_port_moves_in_existing_xml() -> None:
    xml = render_domain(spec(graphics=Graphics("vnc", 24001, "127.0.0.1")))
    moved = ET.fromstring(with_graphics_port(xml, 25000))
    assert one(moved, "devices/graphics").get("port") == "25000"
    assert one(moved, "devices/graphics/listen").get("address") == "127.0.0.1"
    plain = render_domain(spec())
    assert with_graphics_port(plain, 25000) == plain


def test_graphics_port_moves_keep_qemu_elements() -> None:
    xml = render_domain(spec(disks=(disk("nvme"),), graphics=Graphics("vnc", 24001, "::1")))
    moved = ET.fromstring(with_graphics_port(xml, 25000))
    assert moved.find(f"{Q}override") is not None


@pytest.mark.parametrize(
    ("message", "clash"),
    [
        (
            "qemu: -vnc 127.0.0.1:18667: Failed to find an available port: Address already in use",
            True,
        ),
        ("Spice: do_spice_init: Failed to open SPICE sockets", True),
        ("internal error: Failed to reserve port 29939", True),
        ("Cannot access storage file '/x/disk-0.qcow2'", False),
    ],
)
def test_port_clashes_are_recognised(message: str, clash: bool) -> None:
    assert graphics_port_clash(message) is clash


# Refusals.


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"virt_type": "xen"}, "virt_type"),
        ({"machine": "isapc"}, "machine"),
        ({"video_model": "hologram"}, "video model"),
        ({"disks": (disk("floppy"),)}, "disk bus"),
        ({"disks": (disk("sata", kind="lun"),)}, "disk kind"),
        ({"disks": (disk("sata", fmt="vmdk"),)}, "disk format"),
        ({"nics": (NicDevice("52:54:00:00:00:01", "virtio-9p", "br0"),)}, "NIC model"),
        ({"disks": (disk("virtio", "cdrom"),)}, "cdrom"),
        ({"disks": (disk("nvme", "cdrom"),)}, "cdrom"),
        ({"machine": "q35", "disks": (disk("ide"),)}, "IDE"),
        ({"disks": (disk("ide"),) * 5}, "IDE"),
        ({"machine": "pc", "firmware": SECURE}, "q35"),
        ({"graphics": Graphics("rdp", 24000, "127.0.0.1")}, "graphics kind"),
        ({"graphics": Graphics("vnc", 5899, "127.0.0.1")}, "5900"),
        ({"graphics": Graphics("vnc", 24000, "")}, "listen"),
        ({"graphics": Graphics("vnc", 24000, "127.0.0.1", concurrent=True)}, "SPICE"),
        ({"side_channels": (SideChannel("serial", Path("/s/sc-serial")),)}, "side channel"),
        ({"side_channels": (AGENT, AGENT)}, "twice"),
        ({"side_channels": (SideChannel("sf-agent", Path("/" + "s" * 107)),)}, "107 bytes"),
    ],
)
def test_refuses_what_libvirt_would(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_domain(spec(**changes))


# Side channels (reference §5.1).


def test_no_channel_without_side_channels() -> None:
    assert render().find("devices/channel") is None


def test_side_channel_is_a_virtio_serial_port_on_a_socket_qemu_binds() -> None:
    channel = one(render(side_channels=(AGENT,)), "devices/channel")
    assert channel.attrib == {"type": "unix"}
    assert one(channel, "source").attrib == {
        "mode": "bind",
        "path": "/state/instances/x/sc-sf-agent",
    }
    assert one(channel, "target").attrib == {
        "type": "virtio",
        "name": "sf-agent",
        "state": "connected",
    }


def test_a_socket_path_of_107_bytes_fits() -> None:
    path = Path("/" + "s" * 106)
    channel = one(render(side_channels=(SideChannel("sf-agent", path),)), "devices/channel")
    assert one(channel, "source").get("path") == str(path)
