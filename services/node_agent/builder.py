"""What an instance is made of on this node: its images fetched, its disks,
config drive and console laid out under `<instances dir>/<uuid>/`, and the
domain XML describing them; and all of it removed again. Every step may be
repeated: files already in place are kept."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from sfmesh.v1 import event_pb2, instance_pb2, records_pb2

from services.common import side_channels as channels
from services.common.events import EventSink
from services.common.wire import wire_name
from services.node_agent import disks as disk_files
from services.node_agent.configdrive import ConfigDriveContent, write_config_drive
from services.node_agent.disk_images import DiskImage, DiskImages
from services.node_agent.disks import DiskError
from services.node_agent.domain_xml import (
    DiskDevice,
    DomainSpec,
    Firmware,
    Graphics,
    NicDevice,
    SideChannel,
    device_names,
    render_domain,
)
from services.node_agent.hypervisor import Hypervisor
from services.node_agent.images import ImageError

OVMF = Path("/usr/share/OVMF")
DEFAULT_VIDEO_KIB = 16384
EMPTY_NETWORK_DATA: dict[str, list[object]] = {"links": [], "networks": [], "services": []}


class BuildError(Exception):
    """An instance cannot be built here; the message says why, for users."""


@dataclass(frozen=True)
class LaidOut:
    """A built instance: the domain to define and the disks as laid out."""

    xml: str
    disks: list[instance_pb2.Disk]
    seconds: dict[str, float]
    """How long each stage took: "disks", "config drive"."""


def _wire(descriptor: object, value: int, default: str) -> str:
    return wire_name(descriptor, value) if value else default  # type: ignore[arg-type]


def firmware(
    instance: instance_pb2.Instance, folder: Path, nvram_template: Path | None = None
) -> Firmware | None:
    """OVMF for UEFI instances (the secure-boot build with secure boot), its
    variables starting from `nvram_template` (the blob the instance's
    `nvram_template` names) or else OVMF's own. Pure."""
    if not instance.uefi:
        return None
    code, template = (
        ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd")
        if instance.secure_boot
        else ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd")
    )
    return Firmware(
        loader=OVMF / code,
        nvram=folder / "nvram.fd",
        nvram_template=nvram_template or OVMF / template,
        secure_boot=instance.secure_boot,
    )


def side_channels(instance: instance_pb2.Instance, folder: Path) -> tuple[SideChannel, ...]:
    """The instance's side channels, each once, in the order asked, their
    sockets in its folder (reference §5.1). Names the api no longer accepts
    (records written before it checked them) get no channel. Pure."""
    wanted = dict.fromkeys(name for name in instance.side_channels if name in channels.KNOWN)
    return tuple(SideChannel(name, folder / channels.socket_name(name)) for name in wanted)


class Builder:
    """Lays out and removes instances under one folder."""

    def __init__(
        self,
        *,
        instances_dir: Path,
        images: DiskImages,
        hypervisor: Hypervisor,
        virt_type: str,
        events: EventSink,
    ) -> None:
        self._root = instances_dir
        self._images = images
        self._hypervisor = hypervisor
        self._virt_type = virt_type
        self._events = events
        self._waiting: dict[str, set[str]] = {}
        """URL -> the instances waiting for its download."""

    def folder(self, uuid: str) -> Path:
        """Where an instance's files live."""
        return self._root / uuid

    def side_channel_socket(self, uuid: str, channel: str) -> Path:
        """The host socket of an instance's side channel (reference §5.1)."""
        return self.folder(uuid) / channels.socket_name(channel)

    def console_log(self, uuid: str) -> Path:
        """The serial console capture of an instance."""
        return self.folder(uuid) / "console.log"

    async def fetch_images(self, record: records_pb2.InstanceRecord) -> list[DiskImage | None]:
        """Each disk's base image on this node (fetched when not here), in
        disk order; None for blank disks (``disk_images.py``). Downloads
        report their progress as events on every instance waiting for them."""
        uuid = record.instance.uuid

        @contextlib.contextmanager
        def waiting(url: str) -> Iterator[None]:
            self._waiting.setdefault(url, set()).add(uuid)
            try:
                yield
            finally:
                self._waiting.get(url, set()).discard(uuid)

        try:
            return await self._images.for_instance(record, waiting)
        except ImageError as exc:
            raise BuildError(str(exc)) from exc

    async def fetch_nvram_template(self, record: records_pb2.InstanceRecord) -> Path | None:
        """The NVRAM template blob of a UEFI instance on this node (copied
        from a peer when not here); None without one."""
        if not record.nvram_blob_uuid or not record.instance.uefi:
            return None
        try:
            return (await self._images.from_blob(record.nvram_blob_uuid)).path
        except ImageError as exc:
            raise BuildError(f"the NVRAM template: {exc}") from exc

    def fetch_progress(self, url: str, done: int, total: int | None) -> None:
        """An ImageCache progress report: a status event on each instance
        waiting for `url`."""
        share = f" ({done * 100 // total}%)" if total else ""
        for uuid in sorted(self._waiting.get(url, ())):
            self._events.emit(
                "instance",
                uuid,
                event_pb2.EVENT_TYPE_STATUS,
                f"fetching image {url}: {done:,} bytes{share}",
                extra={"url": url, "bytes": done, "total": total},
            )

    async def lay_out(
        self,
        instance: instance_pb2.Instance,
        images: list[DiskImage | None],
        bridges: Mapping[str, str],
        nvram_template: Path | None = None,
        *,
        graphics: Graphics | None = None,
    ) -> LaidOut:
        """Disks, config drive and the domain XML of an instance (a UEFI
        one's variables starting from `nvram_template` when given, its
        graphical console `graphics` when given)."""
        folder = self.folder(instance.uuid)
        try:
            await asyncio.to_thread(_make_folder, folder)
        except OSError as exc:
            raise BuildError(f"cannot make the instance folder: {exc}") from exc
        devices: list[DiskDevice] = []
        views: list[instance_pb2.Disk] = []
        seconds = {"disks": 0.0, "config drive": 0.0}
        started = time.perf_counter()
        try:
            for index, (spec, image) in enumerate(zip(instance.disk_spec, images, strict=True)):
                device = await self._disk(folder, index, spec, image)
                devices.append(device)
                view = instance_pb2.Disk(bus=_bus(device.bus), snapshot_ignores=device.readonly)
                if spec.HasField("size"):
                    view.size = spec.size
                if image is not None and image.blob_uuid:
                    view.blob_uuid = image.blob_uuid  # one reference, added when created
                views.append(view)
            seconds["disks"] = time.perf_counter() - started
            if instance.configdrive != instance_pb2.CONFIG_DRIVE_NONE:
                # The second device, on the root disk's bus (reference §2.1).
                started = time.perf_counter()
                drive = await self._config_drive(folder, instance, devices[0].bus)
                seconds["config drive"] = time.perf_counter() - started
                devices.insert(1, drive)
                views.insert(1, instance_pb2.Disk(bus=_bus(drive.bus), snapshot_ignores=True))
        except (DiskError, OSError) as exc:
            raise BuildError(f"laying out disks failed: {exc}") from exc
        for view, name in zip(views, device_names(devices), strict=True):
            view.device = name
        domain = DomainSpec(
            name=self._hypervisor.domain_name(instance.uuid),
            uuid=instance.uuid,
            cpus=instance.cpus,
            memory_mib=instance.memory,
            virt_type=self._virt_type,
            machine=instance.machine_type or "pc",
            disks=tuple(devices),
            nics=tuple(
                NicDevice(
                    mac=nic.macaddr,
                    model=_wire(instance_pb2.NicModel.DESCRIPTOR, nic.model, "virtio"),
                    bridge=bridges[nic.network_uuid],
                )
                for nic in sorted(instance.interfaces, key=lambda nic: nic.order)
            ),
            video_model=_wire(instance_pb2.VideoModel.DESCRIPTOR, instance.video.model, "cirrus"),
            video_vram_kib=instance.video.memory or DEFAULT_VIDEO_KIB,
            console_log=self.console_log(instance.uuid),
            firmware=firmware(instance, folder, nvram_template),
            graphics=graphics,
            side_channels=side_channels(instance, folder),
        )
        try:
            xml = render_domain(domain)
        except ValueError as exc:  # a device set libvirt would refuse
            raise BuildError(str(exc)) from exc
        return LaidOut(xml=xml, disks=views, seconds=seconds)

    async def tear_down(self, uuid: str) -> None:
        """Remove the domain and every file of an instance; no-op when gone."""
        await self._hypervisor.remove(uuid)
        await self.remove_files(uuid)

    async def remove_files(self, uuid: str) -> None:
        """Remove every file of an instance (disks, config drive, console,
        NVRAM); no-op when gone."""
        await asyncio.to_thread(shutil.rmtree, self.folder(uuid), True)

    async def _disk(
        self,
        folder: Path,
        index: int,
        spec: instance_pb2.DiskSpec,
        image: DiskImage | None,
    ) -> DiskDevice:
        bus = _wire(instance_pb2.DiskBus.DESCRIPTOR, spec.bus, "virtio")
        size = spec.size if spec.HasField("size") else None
        if spec.type == instance_pb2.DISK_TYPE_CDROM:
            if image is None:
                raise BuildError(f"disk {index} is a cdrom with no base image")
            # No virtio cdroms: they move to usb (reference §2.1).
            bus = "usb" if bus == "virtio" else bus
            return DiskDevice(path=image.path, bus=bus, kind="cdrom", fmt=image.fmt, readonly=True)
        target = folder / f"disk-{index}.qcow2"
        if image is None:
            if size is None:
                raise BuildError(f"disk {index} has neither a base image nor a size")
            await disk_files.blank(target, size)
        else:
            await disk_files.overlay(image.path, image.fmt, target, size)
        return DiskDevice(path=target, bus=bus, kind="disk", fmt="qcow2")

    async def _config_drive(
        self, folder: Path, instance: instance_pb2.Instance, bus: str
    ) -> DiskDevice:
        target = folder / "config.iso"
        content = ConfigDriveContent(
            uuid=instance.uuid,
            hostname=instance.name,
            user_data=base64.b64decode(instance.user_data) if instance.user_data else None,
            ssh_key=instance.ssh_key or None,
            network_data=EMPTY_NETWORK_DATA,
        )
        await write_config_drive(content, target)
        return DiskDevice(path=target, bus=bus, kind="disk", fmt="raw", readonly=True)


def _bus(name: str) -> instance_pb2.DiskBus:
    return instance_pb2.DiskBus.Value(f"DISK_BUS_{name.upper()}")  # type: ignore[return-value]


def _make_folder(folder: Path) -> None:
    """Folders qemu (another user) can traverse."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder.chmod(0o755)
