"""The libvirt domain XML of an instance: frozen dataclasses describing the
domain and one pure function rendering them (no I/O, no libvirt, no clock).

Checked against libvirt 9.0 with QEMU 7.2 (Debian 12):

- **NVMe.** libvirt 9.0 has no emulated NVMe disk: `<target bus='nvme'>` is
  refused ("Invalid value for attribute 'bus'"), and `<disk type='nvme'>` is
  host NVMe passthrough over VFIO. So an NVMe disk is rendered as an ordinary
  virtio disk with a user alias (`ua-nvmeN`), and a `<qemu:override>` (libvirt
  8.2+) turns its QEMU frontend from `virtio-blk-pci` into `nvme` with a
  serial number. libvirt still owns the disk: it labels the image for the
  qemu user, builds its `-blockdev` chain and passes the boot order, so the
  override changes only the device the guest sees. The other way, a
  `<qemu:commandline>` `-drive`/`-device nvme`, bypasses all of that (qemu
  cannot open an image libvirt has not relabelled) and needs comma escaping
  of paths. Both taint the domain in libvirt's log (`custom-device` here).
  Guests name these disks `nvme0n1`, `nvme1n1`…; libvirt knows them by the
  `vdX` names that follow the real virtio disks.
- **Refusals.** `render_domain` raises `ValueError` for values outside the
  accepted sets and for what libvirt would refuse less clearly: IDE on q35
  (q35 has no IDE controller), more than four IDE devices, a cdrom on
  virtio or NVMe (no ejectable media), secure boot off q35.
- **Video.** Every model starts under QEMU 7.2: `virtio` becomes
  `virtio-vga` as the primary card, `bochs` a `bochs-display` whose `vram`
  is its memory (4 to 256 MiB), `ramfb` a standalone framebuffer, and
  `none` no device.
- **Graphics** (guest-access reference §2.2, with our own choices: the
  node agent's README, "Graphical consoles"). VNC, or SPICE, both of which
  this QEMU has, on a port the node agent chose (`autoport='no'`) and one
  listen address, with no password. QEMU's VNC display number is the port
  less 5900, so ports below 5900 are refused. SPICE is plain: no `tlsPort`
  and `defaultMode='insecure'`, since there is no libvirt SPICE PKI here
  (upstream forces every channel onto TLS, which leaves its plain port
  unusable). It gets the `spicevmc` agent channel (`com.redhat.spice.0`,
  virtio-serial, which libvirt adds) but no USB redirection: redirected
  USB devices would reach the guest from whoever reaches the port. A port
  already taken fails the domain's start with QEMU's "Address already in
  use" (VNC) or "Failed to open SPICE sockets": `graphics_port_clash`.
  `spiceconcurrent` sets `SPICE_DEBUG_ALLOW_MC=1` in QEMU's environment
  (`<qemu:commandline><qemu:env>`, which taints the domain
  `custom-argv`), so several viewers may share the console.
- **Side channels** (reference §5.1): a virtio-serial `<channel type='unix'>`
  per channel, named as the guest sees it (`/dev/virtio-ports/<name>`),
  whose socket libvirt itself makes and hands to qemu (owned by the qemu
  user, in a folder of root's that qemu cannot write to), so the node agent
  connects to it as a client. Its path must fit a UNIX socket address
  (107 bytes).
- NIC wire names are QEMU device names, which libvirt 9.0 passes through
  unchanged (including `ne2k_pci`, `pcnet` and the `i8255x` family), so no
  renaming is needed; the allow-list keeps other device names out.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.common import side_channels

DISK_BUSES = frozenset({"ide", "sata", "scsi", "usb", "virtio", "nvme"})
DISK_KINDS = frozenset({"disk", "cdrom"})
DISK_FORMATS = frozenset({"qcow2", "raw"})
NIC_MODELS = frozenset(
    {"virtio", "e1000", "e1000e", "rtl8139", "i82551", "i82557b", "i82559er", "ne2k_pci", "pcnet"}
)
VIRT_TYPES = frozenset({"kvm", "qemu"})
GRAPHICS_KINDS = frozenset({"vnc", "spice"})
LOWEST_GRAPHICS_PORT = 5900
"""QEMU numbers VNC displays from port 5900."""
_CLASH_MESSAGES = (
    "Address already in use",
    "Failed to open SPICE sockets",
    "Failed to reserve port",
)
"""What QEMU (through libvirt) says when a graphics port is taken; the last
is libvirt's own, for a port another of its domains holds (several node
agents on one libvirtd, as the multi-host tests run them)."""
MACHINES = frozenset({"pc", "q35"})
VIDEO_MODELS = frozenset({"vga", "cirrus", "qxl", "virtio", "bochs", "ramfb", "none"})
VRAM_MODELS = frozenset({"vga", "cirrus", "qxl", "bochs"})
"""The video models given a `vram`: QEMU's virtio-gpu and ramfb have no such
memory (libvirt ignores it), and `none` is no device at all."""

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
"""libvirt's namespace for QEMU-specific elements (`<qemu:override>`)."""
ET.register_namespace("qemu", QEMU_NS)

SOCKET_PATH_BYTES = 107
"""The longest path a UNIX socket address holds (108 with its NUL)."""

_NAME_PREFIXES = {"virtio": "vd", "sata": "sd", "scsi": "sd", "usb": "sd", "ide": "hd"}
_IDE_SLOTS = 4  # two IDE buses of two units each
_NO_EJECTABLE_MEDIA = frozenset({"virtio", "nvme"})


@dataclass(frozen=True)
class DiskDevice:
    """One disk or cdrom backed by an image file on the host."""

    path: Path
    """The image file on the host."""
    bus: str
    """One of `DISK_BUSES`."""
    kind: str
    """`disk` or `cdrom`."""
    fmt: str
    """`qcow2` or `raw`."""
    readonly: bool = False
    """Cdroms are always read-only, whatever this says."""


@dataclass(frozen=True)
class NicDevice:
    """One network interface attached to a host bridge."""

    mac: str
    """`52:54:00:…`."""
    model: str
    """One of `NIC_MODELS` (the wire names)."""
    bridge: str
    """The host bridge to attach to."""


@dataclass(frozen=True)
class Firmware:
    """UEFI (OVMF) firmware and the instance's own copy of its variables."""

    loader: Path
    """OVMF code, e.g. /usr/share/OVMF/OVMF_CODE_4M.fd (…secboot.fd for secure boot)."""
    nvram: Path
    """The per-instance NVRAM file; libvirt copies the template there at first start."""
    nvram_template: Path
    secure_boot: bool
    """Needs the q35 machine and a secure-boot loader."""


@dataclass(frozen=True)
class Graphics:
    """A graphical console, without password or TLS (module docstring)."""

    kind: str
    """`vnc` or `spice`."""
    port: int
    """The TCP port, chosen by the node agent (`graphics_ports.py`)."""
    listen: str
    """The address it listens at."""
    concurrent: bool = False
    """SPICE only: let several viewers share the console."""


@dataclass(frozen=True)
class SideChannel:
    """A virtio-serial port the guest sees by name, backed by a UNIX socket
    qemu listens on."""

    name: str
    """One of `services.common.side_channels.KNOWN`, e.g. `sf-agent`."""
    socket: Path
    """The socket on the host (`<instance folder>/sc-<name>`)."""


@dataclass(frozen=True)
class DomainSpec:
    """Everything the domain XML says about one instance."""

    name: str
    """The libvirt domain name."""
    uuid: str
    """The instance uuid, used as the domain uuid."""
    cpus: int
    memory_mib: int
    virt_type: str
    """`kvm` or `qemu` (TCG)."""
    machine: str
    """`pc` or `q35`."""
    disks: tuple[DiskDevice, ...]
    """In boot order: the first one boots."""
    nics: tuple[NicDevice, ...]
    video_model: str
    """One of `VIDEO_MODELS`."""
    video_vram_kib: int
    console_log: Path
    """The file the serial console is captured to (appended)."""
    firmware: Firmware | None = None
    """None means BIOS (SeaBIOS)."""
    graphics: Graphics | None = None
    """None: no graphical console."""
    side_channels: tuple[SideChannel, ...] = ()
    """Virtio-serial side channels, each name at most once."""


def device_names(disks: Sequence[DiskDevice]) -> list[str]:
    """Guest names of the disks, in order: virtio `vda`, `vdb`…; sata, scsi
    and usb share one counter, `sda`, `sdb`…; ide `hda`…; nvme `nvme0n1`,
    `nvme1n1`… (one controller per disk)."""
    counters: Counter[str] = Counter()
    names = []
    for disk in disks:
        if disk.bus == "nvme":
            names.append(f"nvme{counters['nvme']}n1")
            counters["nvme"] += 1
        else:
            prefix = _NAME_PREFIXES[disk.bus]
            names.append(prefix + _suffix(counters[prefix]))
            counters[prefix] += 1
    return names


def render_domain(spec: DomainSpec) -> str:
    """The domain XML libvirt defines. Raises ValueError for a spec libvirt
    would refuse (see the module docstring)."""
    _check(spec)
    domain = ET.Element("domain", type=spec.virt_type)
    _text(domain, "name", spec.name)
    _text(domain, "uuid", spec.uuid)
    _text(domain, "memory", str(spec.memory_mib), unit="MiB")
    _text(domain, "vcpu", str(spec.cpus))
    _os(domain, spec)
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if spec.firmware is not None and spec.firmware.secure_boot:
        ET.SubElement(features, "smm", state="on")
    if spec.virt_type == "kvm":
        ET.SubElement(domain, "cpu", mode="host-passthrough")
    for event, action in (("poweroff", "destroy"), ("reboot", "restart"), ("crash", "destroy")):
        _text(domain, f"on_{event}", action)
    devices = ET.SubElement(domain, "devices")
    nvme_aliases = _disks(devices, spec.disks)
    if any(disk.bus == "scsi" for disk in spec.disks):
        ET.SubElement(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for nic in spec.nics:
        devices.append(interface_element(nic))
    video = ET.SubElement(ET.SubElement(devices, "video"), "model", type=spec.video_model)
    if spec.video_model in VRAM_MODELS:
        video.set("vram", str(spec.video_vram_kib))
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=str(spec.console_log), append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="file")
    ET.SubElement(console, "source", path=str(spec.console_log), append="on")
    ET.SubElement(console, "target", type="serial", port="0")
    if spec.graphics is not None:
        _graphics(devices, spec.graphics)
    _side_channels(devices, spec.side_channels)
    if nvme_aliases:
        _nvme_override(domain, nvme_aliases)
    if spec.graphics is not None and spec.graphics.concurrent:
        commandline = ET.SubElement(domain, f"{{{QEMU_NS}}}commandline")
        ET.SubElement(commandline, f"{{{QEMU_NS}}}env", name="SPICE_DEBUG_ALLOW_MC", value="1")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode")


def interface_element(nic: NicDevice) -> ET.Element:
    """The `<interface>` of one NIC, as in the domain and as hot-plugged
    (`nic_devices.py`). Raises ValueError for a model outside `NIC_MODELS`.
    Pure."""
    _one_of("NIC model", nic.model, NIC_MODELS)
    interface = ET.Element("interface", type="bridge")
    ET.SubElement(interface, "mac", address=nic.mac)
    ET.SubElement(interface, "source", bridge=nic.bridge)
    ET.SubElement(interface, "model", type=nic.model)
    return interface


def _check(spec: DomainSpec) -> None:
    _one_of("virt_type", spec.virt_type, VIRT_TYPES)
    _one_of("machine", spec.machine, MACHINES)
    _one_of("video model", spec.video_model, VIDEO_MODELS)
    for disk in spec.disks:
        _one_of("disk bus", disk.bus, DISK_BUSES)
        _one_of("disk kind", disk.kind, DISK_KINDS)
        _one_of("disk format", disk.fmt, DISK_FORMATS)
        if disk.kind == "cdrom" and disk.bus in _NO_EJECTABLE_MEDIA:
            raise ValueError(f"a cdrom cannot sit on the {disk.bus} bus")
    for nic in spec.nics:
        _one_of("NIC model", nic.model, NIC_MODELS)
    ide = sum(disk.bus == "ide" for disk in spec.disks)
    if ide and spec.machine == "q35":
        raise ValueError("the q35 machine has no IDE bus")
    if ide > _IDE_SLOTS:
        raise ValueError(f"at most {_IDE_SLOTS} IDE devices fit, not {ide}")
    if spec.firmware is not None and spec.firmware.secure_boot and spec.machine != "q35":
        raise ValueError("secure boot needs the q35 machine")
    names = [channel.name for channel in spec.side_channels]
    for channel in spec.side_channels:
        _one_of("side channel", channel.name, side_channels.KNOWN)
        if names.count(channel.name) > 1:
            raise ValueError(f"side channel {channel.name!r} given twice")
        if len(bytes(channel.socket)) > SOCKET_PATH_BYTES:
            raise ValueError(
                f"the socket path of side channel {channel.name!r} is longer than "
                f"{SOCKET_PATH_BYTES} bytes: {channel.socket}"
            )
    if spec.graphics is not None:
        _check_graphics(spec.graphics)


def _check_graphics(graphics: Graphics) -> None:
    _one_of("graphics kind", graphics.kind, GRAPHICS_KINDS)
    if not LOWEST_GRAPHICS_PORT <= graphics.port <= 65535:
        raise ValueError(f"graphics port {graphics.port} is outside 5900-65535")
    if not graphics.listen:
        raise ValueError("graphics need a listen address")
    if graphics.concurrent and graphics.kind != "spice":
        raise ValueError("only SPICE consoles may be concurrent")


def graphics_port_clash(message: str) -> bool:
    """Whether libvirt's error starting a domain says its graphics port was
    taken (module docstring). Pure."""
    return any(clash in message for clash in _CLASH_MESSAGES)


def with_graphics_port(xml: str, port: int) -> str:
    """A domain's XML (as libvirt gives it) with its graphics device moved
    to `port`; unchanged when it has none. Pure."""
    domain = ET.fromstring(xml)
    graphics = domain.find("devices/graphics")
    if graphics is None:
        return xml
    graphics.set("port", str(port))
    graphics.set("autoport", "no")
    return ET.tostring(domain, encoding="unicode")


def _one_of(what: str, value: str, allowed: frozenset[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(allowed)}")


def _suffix(index: int) -> str:
    """libvirt's disk name suffix of a 0-based index: a…z, aa…az, ba…"""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _os(domain: ET.Element, spec: DomainSpec) -> None:
    os_element = ET.SubElement(domain, "os")
    _text(os_element, "type", "hvm", arch="x86_64", machine=spec.machine)
    firmware = spec.firmware
    if firmware is None:
        return
    loader = _text(os_element, "loader", str(firmware.loader), readonly="yes", type="pflash")
    if firmware.secure_boot:
        loader.set("secure", "yes")
    _text(os_element, "nvram", str(firmware.nvram), template=str(firmware.nvram_template))


def _disks(devices: ET.Element, disks: Sequence[DiskDevice]) -> list[str]:
    """Add the disk elements; answer the aliases of the NVMe ones."""
    virtio_count = sum(disk.bus == "virtio" for disk in disks)
    nvme_aliases: list[str] = []
    for index, (disk, name) in enumerate(zip(disks, device_names(disks), strict=True)):
        element = ET.SubElement(devices, "disk", type="file", device=disk.kind)
        ET.SubElement(element, "driver", name="qemu", type=disk.fmt)
        ET.SubElement(element, "source", file=str(disk.path))
        if disk.bus == "nvme":
            target = "vd" + _suffix(virtio_count + len(nvme_aliases))
            ET.SubElement(element, "target", dev=target, bus="virtio")
            nvme_aliases.append(f"ua-nvme{len(nvme_aliases)}")
            ET.SubElement(element, "alias", name=nvme_aliases[-1])
        else:
            ET.SubElement(element, "target", dev=name, bus=disk.bus)
        if disk.readonly or disk.kind == "cdrom":
            ET.SubElement(element, "readonly")
        if index == 0:
            ET.SubElement(element, "boot", order="1")
    return nvme_aliases


def _graphics(devices: ET.Element, graphics: Graphics) -> None:
    """The graphics device, and SPICE's agent channel."""
    element = ET.SubElement(
        devices,
        "graphics",
        type=graphics.kind,
        port=str(graphics.port),
        autoport="no",
        listen=graphics.listen,
    )
    if graphics.kind == "spice":
        element.set("defaultMode", "insecure")
    ET.SubElement(element, "listen", type="address", address=graphics.listen)
    if graphics.kind != "spice":
        return
    for tag, attribute, value in (
        ("image", "compression", "auto_glz"),
        ("jpeg", "compression", "always"),
        ("zlib", "compression", "always"),
        ("streaming", "mode", "all"),
    ):
        ET.SubElement(element, tag, {attribute: value})
    channel = ET.SubElement(devices, "channel", type="spicevmc")
    ET.SubElement(channel, "target", type="virtio", name="com.redhat.spice.0")


def _nvme_override(domain: ET.Element, aliases: Sequence[str]) -> None:
    """Make QEMU build each aliased virtio disk's frontend as an `nvme` device."""
    override = ET.SubElement(domain, f"{{{QEMU_NS}}}override")
    for number, alias in enumerate(aliases):
        device = ET.SubElement(override, f"{{{QEMU_NS}}}device", alias=alias)
        frontend = ET.SubElement(device, f"{{{QEMU_NS}}}frontend")
        for name, value in (("driver", "nvme"), ("serial", f"nvme{number}")):
            ET.SubElement(frontend, f"{{{QEMU_NS}}}property", name=name, type="string", value=value)


def _side_channels(devices: ET.Element, channels: Sequence[SideChannel]) -> None:
    """A virtio-serial channel per side channel, its socket bound by qemu
    (reference §5.1); libvirt adds the virtio-serial controller."""
    for channel in channels:
        element = ET.SubElement(devices, "channel", type="unix")
        ET.SubElement(element, "source", mode="bind", path=str(channel.socket))
        ET.SubElement(element, "target", type="virtio", name=channel.name, state="connected")
