"""Pure checks of a create request (reference §4), and the instance view they
produce. No I/O: lookups that need etcd (namespaces, networks) happen in the
servicer before anything is written."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from google.protobuf import json_format, struct_pb2
from sfmesh.v1 import instance_pb2, instance_service_pb2

from services.api import sizes
from services.api.artifacts import sources
from services.api.metadata import rules as metadata
from services.common import errors
from services.common import instance_states as states
from services.common import side_channels as channels

RECORD_VERSION = 14
NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,59}[A-Za-z0-9])?$")
MIN_MEMORY_MIB = 128
MAX_CPUS = 4096
"""No sane request asks for more vCPUs: KVM's own ceiling per guest on x86."""
MAX_MEMORY_MIB = 64 * 1024 * 1024
"""No sane request asks for more memory: 64 TiB fills a 46-bit guest
physical address space."""
DEFAULT_VIDEO_KIB = 16384
VIDEO_KIB = (4096, 262144)
"""Video memory bounds in KiB: QEMU 7.2's bochs-display wants 4 MiB to
256 MiB, libvirt refuses VGA below 1 MiB; the other models take any."""
SECURE_BOOT_BUSES_REFUSED = {instance_pb2.DISK_BUS_IDE}

_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


@dataclass(frozen=True)
class Limits:
    """Configured bounds on what one instance may ask for."""

    max_cpus: int = 16
    """The most vCPUs one instance may have: more is a well-formed request
    that no node will take (507), as the scheduler's vCPU limit is."""


def check_name(name: str) -> None:
    """A DNS label of at most 61 characters, as Shaken Fist's validator allows."""
    if not NAME.fullmatch(name):
        raise errors.InvalidArgument(
            f"instance name {name} is not useable as a DNS and Linux host name. That is, "
            "less than 63 characters and in the character set: a-z, A-Z, 0-9, or hyphen (-)."
        )


def check_resources(cpus: int, memory: int, limits: Limits) -> None:
    """Malformed amounts (below 1 vCPU or 128 MiB, beyond any sane bound)
    are 400; more vCPUs than the configured maximum is 507, like a request
    no node can hold. Memory no node holds is the scheduler's 507."""
    if not 1 <= cpus <= MAX_CPUS:
        raise errors.InvalidArgument(f"cpus must be between 1 and {MAX_CPUS}, not {cpus}")
    if not MIN_MEMORY_MIB <= memory <= MAX_MEMORY_MIB:
        raise errors.InvalidArgument(
            f"memory must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB, not {memory}"
        )
    if cpus > limits.max_cpus:
        raise errors.InsufficientResources(
            f"Requested vCPUs exceeds vCPU limit ({limits.max_cpus} per instance)",
            reason="VCPU_LIMIT",
        )


def check_sizes(request: instance_service_pb2.CreateInstanceRequest) -> None:
    """The counts and lengths of `sizes` (each a 400 naming the field and its limit)."""
    sizes.check_count("disk", request.disk, sizes.DISKS)
    sizes.check_count("network", request.network, sizes.NETWORKS)
    sizes.check_count("metadata", request.metadata.fields, sizes.METADATA_KEYS)
    sizes.check_count("side_channels", request.side_channels.values, sizes.SIDE_CHANNELS)
    for index, disk in enumerate(request.disk):
        sizes.check_length(f"disk[{index}].base", disk.base, sizes.URL_CHARS)
    for field, limit in (
        ("ssh_key", sizes.SSH_KEY_CHARS),
        ("user_data", sizes.USER_DATA_CHARS),
        ("nvram_template", sizes.URL_CHARS),
        ("idempotency_key", sizes.IDEMPOTENCY_KEY_CHARS),
    ):
        sizes.check_length(field, getattr(request, field), limit)


def check_nvram_template(template: str, uefi: bool) -> None:
    """An NVRAM template ("" for none) is for a UEFI instance, and names a
    blob: `label:<name>`, `sf://blob/<uuid>` or a blob uuid (what it names
    is resolved later, before anything is written: ``artifacts.bases``)."""
    if not template:
        return
    if not uefi:
        raise errors.InvalidArgument("nvram_template requires UEFI be enabled")
    sources.parse_nvram_template("nvram_template", template)


def check_disks(disks: list[instance_pb2.DiskSpec], secure_boot: bool) -> None:
    """At least one disk; sizes positive; no IDE on q35."""
    if not disks:
        raise errors.InvalidArgument("instance must specify at least one disk")
    for index, disk in enumerate(disks):
        if disk.HasField("size") and disk.size <= 0:
            raise errors.InvalidArgument(f"disk[{index}].size must be a positive integer")
        if secure_boot and disk.bus in SECURE_BOOT_BUSES_REFUSED:
            raise errors.InvalidArgument(
                f"disk[{index}]: the ide bus is not available with secure_boot (q35 has no IDE)"
            )
        check_base(index, disk.base if disk.HasField("base") else "")


def check_base(index: int, base: str) -> None:
    """A disk base is blank (unset, "" or "none"), an image to fetch (an
    http(s) URL with a host, or a shorthand such as `debian:11`), `label:`
    or one of the sf:// forms of `artifacts.sources`. Anything else
    (`file:`, `ftp:`, `sf://instance/...`) is refused here, before a node
    agent is asked to fetch it; what a label or sf:// base names is resolved
    later, before anything is written (`artifacts.bases`)."""
    sources.parse_base(f"disk[{index}].base", base)


def check_macs(specs: list[instance_pb2.NetworkSpec]) -> None:
    """A networkspec's `macaddress`, when given, is a unicast MAC
    (six hex pairs joined by colons, the multicast bit clear)."""
    for spec in specs:
        if not spec.HasField("macaddress") or not spec.macaddress:
            continue
        if not _MAC.fullmatch(spec.macaddress) or int(spec.macaddress[:2], 16) & 1:
            raise errors.InvalidArgument(f"{spec.macaddress!r} is not a unicast MAC address")


def check_user_data(user_data: str | None) -> None:
    """user_data must be valid base64 when given."""
    if user_data is None:
        return
    try:
        base64.b64decode(user_data, validate=True)
    except ValueError as exc:  # binascii.Error, or text that is not ASCII
        raise errors.InvalidArgument("user_data must be valid base64") from exc


def side_channels(request: instance_service_pb2.CreateInstanceRequest) -> list[str]:
    """The side channels asked for, each a known one (reference §5.1, as
    Shaken Fist [L] checks them); unset means the default agent channel. A
    name given twice is kept twice, as asked: it is one channel."""
    if not request.HasField("side_channels"):
        return list(channels.DEFAULT)
    names = []
    for index, value in enumerate(request.side_channels.values):
        if value.WhichOneof("kind") != "string_value":
            raise errors.InvalidArgument(f"side_channels[{index}] must be a string")
        sizes.check_length(f"side_channels[{index}]", value.string_value, sizes.SIDE_CHANNEL_CHARS)
        if value.string_value not in channels.KNOWN:
            raise errors.InvalidArgument(f"{value.string_value} is not a known side channel type")
        names.append(value.string_value)
    return names


def video(request: instance_service_pb2.CreateInstanceRequest) -> instance_pb2.VideoSpec:
    """The video spec (reference §4.9): none given (or an empty one) means
    cirrus with 16 MiB; one given must name both `model` and `memory`, the
    memory within what every model's QEMU device accepts; `vdi` defaults to
    spice."""
    given = request.video if request.HasField("video") else instance_pb2.VideoSpec()
    if not given.ListFields():
        given = instance_pb2.VideoSpec(
            model=instance_pb2.VIDEO_MODEL_CIRRUS, memory=DEFAULT_VIDEO_KIB
        )
    if not given.model:  # absent, or the enum's unspecified zero
        raise errors.InvalidArgument('video specification requires "model"')
    if not given.HasField("memory"):
        raise errors.InvalidArgument('video specification requires "memory"')
    if not VIDEO_KIB[0] <= given.memory <= VIDEO_KIB[1]:
        raise errors.InvalidArgument(
            f"video memory must be between {VIDEO_KIB[0]} and {VIDEO_KIB[1]} KiB, "
            f"not {given.memory}"
        )
    spec = instance_pb2.VideoSpec()
    spec.CopyFrom(given)
    spec.vdi = spec.vdi or instance_pb2.VDI_TYPE_SPICE
    return spec


def build_instance(
    request: instance_service_pb2.CreateInstanceRequest,
    *,
    uuid: str,
    namespace: str,
    limits: Limits,
) -> instance_pb2.Instance:
    """Validate `request` and return the new instance's view (state initial).

    Raises `errors.InvalidArgument` naming the first rule broken.
    """
    check_name(request.name)
    check_sizes(request)
    check_resources(request.cpus, request.memory, limits)
    if request.secure_boot and not request.uefi:
        raise errors.InvalidArgument("secure boot requires UEFI be enabled")
    check_nvram_template(request.nvram_template, request.uefi)
    check_disks(list(request.disk), request.secure_boot)
    check_user_data(request.user_data if request.HasField("user_data") else None)
    check_macs(list(request.network))
    if request.HasField("metadata"):
        metadata.check_metadata(json_format.MessageToDict(request.metadata))
    instance = instance_pb2.Instance(
        uuid=uuid,
        state=states.INITIAL,
        metadata=request.metadata if request.HasField("metadata") else struct_pb2.Struct(),
        version=RECORD_VERSION,
        cpus=request.cpus,
        memory=request.memory,
        name=request.name,
        namespace=namespace,
        disk_spec=request.disk,
        video=video(request),
        uefi=request.uefi,
        configdrive=request.configdrive or instance_pb2.CONFIG_DRIVE_OPENSTACK_DISK,
        secure_boot=request.secure_boot,
        machine_type="q35" if request.secure_boot else "pc",
        side_channels=side_channels(request),
        power_state=instance_pb2.POWER_STATE_INITIAL,
    )
    for field in ("ssh_key", "user_data"):
        if request.HasField(field):
            setattr(instance, field, getattr(request, field))
    # nvram_template: the blob it names, set once resolved (``artifacts.bases``).
    if request.HasField("placed_on"):
        instance.requested_placement = request.placed_on
    return instance
