"""services/api/instances/validation.py: the create rules of reference §4, and the view
they build."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import struct_pb2
from sfmesh.v1 import instance_pb2, instance_service_pb2

from services.api.instances import validation
from services.api.instances.validation import Limits, build_instance
from services.common import errors
from services.common import instance_states as states

UUID = "6c0b3a4e-4f7b-4d3e-9d2a-2f1f0c1f7e11"
LIMITS = Limits(max_cpus=8)
NAME_MESSAGE = (
    "instance name {} is not useable as a DNS and Linux host name. That is, less than 63 "
    "characters and in the character set: a-z, A-Z, 0-9, or hyphen (-)."
)


def request(**fields: object) -> instance_service_pb2.CreateInstanceRequest:
    """A valid create request, with `fields` replacing the defaults."""
    settings: dict[str, object] = {
        "name": "web-1",
        "cpus": 1,
        "memory": 1024,
        "disk": [instance_pb2.DiskSpec(size=8, base="debian:12")],
    }
    settings.update(fields)
    return instance_service_pb2.CreateInstanceRequest(**settings)  # type: ignore[arg-type]


def build(req: instance_service_pb2.CreateInstanceRequest) -> instance_pb2.Instance:
    return build_instance(req, uuid=UUID, namespace="ns1", limits=LIMITS)


def refusal(req: instance_service_pb2.CreateInstanceRequest) -> str:
    """The message of the InvalidArgument that `req` raises."""
    with pytest.raises(errors.InvalidArgument) as caught:
        build(req)
    assert caught.value.http_status == 400
    return caught.value.message


# --- name (§4.2) ---------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "A", "7", "12345", "web-1", "Web-Server-01", "a-b-c", "a" * 61, "9" * 61, "a--b"],
)
def test_good_names(name: str) -> None:
    assert build(request(name=name)).name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 62,
        "a" * 63,
        "-web",
        "web-",
        "-",
        "web.local",
        "web_1",
        "web 1",
        "wéb",
        "web/1",
        "web:1",
        "abc\n",
    ],
)
def test_bad_names(name: str) -> None:
    assert refusal(request(name=name)) == NAME_MESSAGE.format(name)


def test_name_length_boundary_is_61() -> None:
    assert build(request(name="x" * 61)).name == "x" * 61
    assert refusal(request(name="x" * 62)) == NAME_MESSAGE.format("x" * 62)


# --- cpus and memory -----------------------------------------------------


@pytest.mark.parametrize("cpus", [1, 4, 8])
def test_cpus_within_limits(cpus: int) -> None:
    assert build(request(cpus=cpus)).cpus == cpus


@pytest.mark.parametrize("cpus", [0, -1, 4097, 2**31 - 1])
def test_malformed_cpus_are_400(cpus: int) -> None:
    assert refusal(request(cpus=cpus)) == f"cpus must be between 1 and 4096, not {cpus}"


@pytest.mark.parametrize("cpus", [9, 1000, 4096])
def test_cpus_beyond_the_configured_maximum_are_507(cpus: int) -> None:
    with pytest.raises(errors.InsufficientResources) as caught:
        build(request(cpus=cpus))
    assert caught.value.http_status == 507
    assert caught.value.message == "Requested vCPUs exceeds vCPU limit (8 per instance)"


def test_cpus_limit_is_configurable() -> None:
    req = request(cpus=16)
    assert build_instance(req, uuid=UUID, namespace="ns1", limits=Limits(max_cpus=16)).cpus == 16
    assert Limits().max_cpus == 16


def test_memory_bounds() -> None:
    assert build(request(memory=128)).memory == 128
    assert build(request(memory=64 * 1024 * 1024)).memory == 64 * 1024 * 1024
    for memory in (127, 0, -1, 64 * 1024 * 1024 + 1):
        assert refusal(request(memory=memory)) == (
            f"memory must be between 128 and 67108864 MiB, not {memory}"
        )


# --- lengths and counts (services/api/sizes.py) ------------------------


def _metadata(keys: int) -> struct_pb2.Struct:
    metadata = struct_pb2.Struct()
    metadata.update({f"k{i}": "v" for i in range(keys)})
    return metadata


def _channels(count: int, name: str = "c") -> struct_pb2.ListValue:
    channels = struct_pb2.ListValue()
    channels.extend([name] * count)
    return channels


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"disk": [instance_pb2.DiskSpec(size=1)] * 17},
            "disk may have at most 16 entries, not 17",
        ),
        (
            {"network": [instance_pb2.NetworkSpec(network_uuid="n")] * 17},
            "network may have at most 16 entries, not 17",
        ),
        ({"metadata": _metadata(65)}, "metadata may have at most 64 entries, not 65"),
        ({"side_channels": _channels(17)}, "side_channels may have at most 16 entries, not 17"),
        (
            {"side_channels": _channels(1, "c" * 65)},
            "side_channels[0] must be at most 64 characters long, not 65",
        ),
        (
            {"disk": [instance_pb2.DiskSpec(base="https://x/" + "a" * 2039)]},
            "disk[0].base must be at most 2048 characters long, not 2049",
        ),
        ({"ssh_key": "k" * 16385}, "ssh_key must be at most 16384 characters long, not 16385"),
        (
            {"user_data": "QUFB" * 16384},
            "user_data must be at most 65535 characters long, not 65536",
        ),
        (
            {"nvram_template": "t" * 2049},
            "nvram_template must be at most 2048 characters long, not 2049",
        ),
        (
            {"idempotency_key": "i" * 256},
            "idempotency_key must be at most 255 characters long, not 256",
        ),
    ],
)
def test_lengths_and_counts_are_bounded(fields: dict[str, object], message: str) -> None:
    assert refusal(request(**fields)) == message


def test_lengths_and_counts_at_their_limits_pass() -> None:
    built = build(
        request(
            disk=[instance_pb2.DiskSpec(size=1)] * 16,
            metadata=_metadata(64),
            side_channels=_channels(16, "sf-agent"),
            ssh_key="k" * 16384,
            user_data="QUFB" * 16383,
            uefi=True,
            nvram_template="label:" + "t" * 2042,
            idempotency_key="i" * 255,
        )
    )
    assert len(built.disk_spec) == 16


def test_a_huge_name_is_refused_with_a_bounded_message() -> None:
    message = refusal(request(name="x" * 100_000))
    assert message.startswith("instance name xxx")
    assert message.endswith("or hyphen (-).")
    assert len(message.encode()) <= errors.MESSAGE_BYTES


# --- disks (§4.6) --------------------------------------------------------


def test_no_disk() -> None:
    assert refusal(request(disk=[])) == "instance must specify at least one disk"


@pytest.mark.parametrize("size", [0, -1])
def test_disk_size_must_be_positive(size: int) -> None:
    disks = [instance_pb2.DiskSpec(size=8), instance_pb2.DiskSpec(size=size)]
    assert refusal(request(disk=disks)) == "disk[1].size must be a positive integer"


def test_disk_size_may_be_omitted() -> None:
    instance = build(request(disk=[instance_pb2.DiskSpec(base="http://x/boot.iso")]))
    assert not instance.disk_spec[0].HasField("size")


@pytest.mark.parametrize(
    "base",
    ["label:debian", "sf://blob/6c0b3a4e-0d1c-4b2a-9f8e-7d6c5b4a3f2e", "sf://upload/ns/img"],
)
def test_label_and_sf_bases_pass_validation(base: str) -> None:
    """What they name is resolved later, before anything is written."""
    build(request(disk=[instance_pb2.DiskSpec(size=8, base=base)]))


@pytest.mark.parametrize("base", ["sf://instance/x/vda", "sf://blob/6c0b3a4e", "sf://other/x"])
def test_unknown_sf_bases_are_400(base: str) -> None:
    message = refusal(request(disk=[instance_pb2.DiskSpec(size=8, base=base)]))
    assert message.startswith(f'disk[0].base "{base}": sf:// bases are ')


@pytest.mark.parametrize(
    "base",
    [
        "debian:11",
        "debian:12",
        "ubuntu:22.04",
        "centos:9-stream",
        "cirros",
        "cirros:0.6.2",
        "fedora:39",
        "http://example.com/x.qcow2",
        "HTTPS://images.example.com:8443/a/b.qcow2?v=1",
        "http://[::1]:8080/x.raw",
        "none",
        "NONE",
        "",
    ],
)
def test_shorthands_http_urls_and_blanks_are_accepted(base: str) -> None:
    assert build(request(disk=[instance_pb2.DiskSpec(size=8, base=base)])).disk_spec[0].base == base


@pytest.mark.parametrize(
    "base",
    [
        "file:///etc/shadow",
        "file:/etc/shadow",
        "FILE:///etc/shadow",
        "ftp://example.com/x.qcow2",
        "gopher://example.com:70/1",
        "data:application/octet-stream;base64,AAAA",
        "data:text",
        "file:etc",
        "gopher:x",
        "ftp:host",
        "javascript:x",
        "debian:bullseye",
        "/etc/shadow",
        "//example.com/x.qcow2",
        "http:///x.qcow2",
        "http://[::1/x.qcow2",
        "debian/11",
        "debian:11 ",
    ],
)
def test_other_schemes_and_paths_are_refused(base: str) -> None:
    message = refusal(request(disk=[instance_pb2.DiskSpec(size=8, base=base)]))
    assert message == (
        f'disk[0].base "{base}" is neither an http or https URL nor an image shorthand '
        "such as debian:11"
    )


def test_ide_refused_with_secure_boot() -> None:
    disks = [
        instance_pb2.DiskSpec(size=8, bus=instance_pb2.DISK_BUS_VIRTIO),
        instance_pb2.DiskSpec(size=8, bus=instance_pb2.DISK_BUS_IDE),
    ]
    assert refusal(request(disk=disks, uefi=True, secure_boot=True)) == (
        "disk[1]: the ide bus is not available with secure_boot (q35 has no IDE)"
    )


def test_ide_accepted_without_secure_boot() -> None:
    disks = [instance_pb2.DiskSpec(size=8, bus=instance_pb2.DISK_BUS_IDE)]
    instance = build(request(disk=disks, uefi=True))
    assert instance.disk_spec[0].bus == instance_pb2.DISK_BUS_IDE
    assert instance.machine_type == "pc"


# --- UEFI, secure boot, machine type (§4.3) -----------------------------


def test_secure_boot_requires_uefi() -> None:
    assert refusal(request(secure_boot=True)) == "secure boot requires UEFI be enabled"


def test_machine_type() -> None:
    assert build(request()).machine_type == "pc"
    assert build(request(uefi=True)).machine_type == "pc"
    secure = build(request(uefi=True, secure_boot=True))
    assert secure.machine_type == "q35"
    assert secure.uefi
    assert secure.secure_boot


# --- user_data, side channels, video, config drive ---------------------


def test_user_data_base64() -> None:
    encoded = base64.b64encode(b"#cloud-config\n").decode()
    assert build(request(user_data=encoded)).user_data == encoded
    assert build(request(user_data="")).HasField("user_data")


@pytest.mark.parametrize("user_data", ["not base64!", "abc", "#cloud-config", "é"])
def test_user_data_not_base64(user_data: str) -> None:
    assert refusal(request(user_data=user_data)) == "user_data must be valid base64"


def test_side_channels_unset_means_agent() -> None:
    assert list(build(request()).side_channels) == ["sf-agent"]


def test_side_channels_empty_list_means_none() -> None:
    assert list(build(request(side_channels=struct_pb2.ListValue())).side_channels) == []


def test_side_channels_given() -> None:
    channels = struct_pb2.ListValue()
    channels.extend(["sf-agent"])
    assert list(build(request(side_channels=channels)).side_channels) == ["sf-agent"]


def test_side_channels_must_be_strings() -> None:
    channels = struct_pb2.ListValue()
    channels.extend(["sf-agent", 3])
    assert refusal(request(side_channels=channels)) == "side_channels[1] must be a string"


@pytest.mark.parametrize("name", ["serial", "sf-agent2", "../../etc/x", "sf-agent'/>", ""])
def test_side_channels_must_be_known(name: str) -> None:
    # Reference §9 quirk 17: the names end up in domain XML and file paths.
    channels = struct_pb2.ListValue()
    channels.extend(["sf-agent", name])
    assert refusal(request(side_channels=channels)) == f"{name} is not a known side channel type"


def test_video_defaults() -> None:
    video = build(request()).video
    assert video.model == instance_pb2.VIDEO_MODEL_CIRRUS
    assert video.memory == 16384
    assert video.vdi == instance_pb2.VDI_TYPE_SPICE


def test_an_empty_video_spec_means_the_defaults() -> None:
    assert build(request(video=instance_pb2.VideoSpec())).video == build(request()).video


def test_video_given_is_kept_and_completed() -> None:
    given = instance_pb2.VideoSpec(model=instance_pb2.VIDEO_MODEL_QXL, memory=65536)
    video = build(request(video=given)).video
    assert video.model == instance_pb2.VIDEO_MODEL_QXL
    assert video.memory == 65536
    assert video.vdi == instance_pb2.VDI_TYPE_SPICE
    full = instance_pb2.VideoSpec(
        model=instance_pb2.VIDEO_MODEL_VGA, memory=65536, vdi=instance_pb2.VDI_TYPE_VNC
    )
    assert build(request(video=full)).video == full


@pytest.mark.parametrize(
    "model",
    [
        instance_pb2.VIDEO_MODEL_VIRTIO,
        instance_pb2.VIDEO_MODEL_BOCHS,
        instance_pb2.VIDEO_MODEL_RAMFB,
        instance_pb2.VIDEO_MODEL_NONE,
    ],
)
def test_every_libvirt_video_model_is_accepted(model: int) -> None:
    video = instance_pb2.VideoSpec(model=model, memory=32768)  # type: ignore[arg-type]
    assert build(request(video=video)).video.model == model


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (instance_pb2.VideoSpec(model=instance_pb2.VIDEO_MODEL_CIRRUS), 'requires "memory"'),
        (instance_pb2.VideoSpec(memory=16384), 'requires "model"'),
        (instance_pb2.VideoSpec(vdi=instance_pb2.VDI_TYPE_VNC), 'requires "model"'),
        (
            instance_pb2.VideoSpec(model=instance_pb2.VIDEO_MODEL_UNSPECIFIED, memory=16384),
            'requires "model"',
        ),
    ],
)
def test_a_video_spec_needs_model_and_memory(video: instance_pb2.VideoSpec, message: str) -> None:
    assert refusal(request(video=video)) == f"video specification {message}"


@pytest.mark.parametrize("memory", [0, -1, 4095, 262145])
def test_video_memory_bounds(memory: int) -> None:
    video = instance_pb2.VideoSpec(model=instance_pb2.VIDEO_MODEL_VGA, memory=memory)
    assert refusal(request(video=video)) == (
        f"video memory must be between 4096 and 262144 KiB, not {memory}"
    )
    for edge in (4096, 262144):
        video.memory = edge
        assert build(request(video=video)).video.memory == edge


def test_config_drive() -> None:
    assert build(request()).configdrive == instance_pb2.CONFIG_DRIVE_OPENSTACK_DISK
    none = request(configdrive=instance_pb2.CONFIG_DRIVE_NONE)
    assert build(none).configdrive == instance_pb2.CONFIG_DRIVE_NONE


# --- placement and the built view ---------------------------------------


def test_requested_placement_only_when_placed_on() -> None:
    assert not build(request()).HasField("requested_placement")
    assert build(request(placed_on="node-3")).requested_placement == "node-3"


def test_built_view() -> None:
    metadata = struct_pb2.Struct()
    metadata.update({"tags": ["a"], "owner": "me"})
    req = request(
        name="db",
        cpus=2,
        memory=2048,
        ssh_key="ssh-ed25519 AAAA",
        uefi=True,
        nvram_template="label:vars",
        metadata=metadata,
    )
    instance = build(req)
    assert instance.uuid == UUID
    assert instance.namespace == "ns1"
    assert instance.name == "db"
    assert instance.state == states.INITIAL
    assert instance.power_state == instance_pb2.POWER_STATE_INITIAL
    assert instance.version == validation.RECORD_VERSION == 14
    assert (instance.cpus, instance.memory) == (2, 2048)
    assert list(instance.disk_spec) == list(req.disk)
    assert instance.ssh_key == "ssh-ed25519 AAAA"
    assert not instance.HasField("nvram_template")  # set once resolved to its blob
    assert instance.metadata == metadata
    assert not instance.HasField("node")
    assert not instance.HasField("error_message")
    assert list(instance.interfaces) == []


def test_optional_fields_stay_unset() -> None:
    instance = build(request())
    for field in ("ssh_key", "user_data", "nvram_template", "requested_placement"):
        assert not instance.HasField(field), field
    assert instance.metadata == struct_pb2.Struct()


def test_first_broken_rule_wins() -> None:
    """Name before resources before secure boot before disks before user data."""
    everything_wrong = request(name="-", cpus=0, memory=1, secure_boot=True, disk=[], user_data="!")
    assert refusal(everything_wrong) == NAME_MESSAGE.format("-")
    assert refusal(request(cpus=0, memory=1, disk=[])).startswith("cpus must be")
    assert refusal(request(memory=1, secure_boot=True, disk=[])).startswith("memory must be")
    assert refusal(request(secure_boot=True, disk=[])) == "secure boot requires UEFI be enabled"
    assert refusal(request(disk=[], user_data="!")) == "instance must specify at least one disk"


@pytest.mark.parametrize("mac", ["52:54:00:12:34:56", "02:00:00:AB:cd:ef", "fe:ff:ff:ff:ff:ff"])
def test_unicast_macs_are_accepted(mac: str) -> None:
    validation.check_macs([instance_pb2.NetworkSpec(network_uuid="n", macaddress=mac)])


@pytest.mark.parametrize(
    "mac", ["52:54:00:12:34", "52-54-00-12-34-56", "zz:54:00:12:34:56", "01:00:5e:00:00:01"]
)
def test_other_macs_are_refused(mac: str) -> None:
    with pytest.raises(errors.InvalidArgument, match="is not a unicast MAC address"):
        validation.check_macs([instance_pb2.NetworkSpec(network_uuid="n", macaddress=mac)])


@pytest.mark.parametrize(
    "template",
    [
        "label:vars",
        "sf://blob/c3a9e2d4-77f0-4f5e-b0d6-1d2e3f405162",
        "C3A9E2D4-77F0-4F5E-B0D6-1D2E3F405162",
        "",
    ],
)
def test_an_nvram_template_names_a_blob(template: str) -> None:
    build(request(uefi=True, nvram_template=template))


FORMS = "an NVRAM template is label:<name>, sf://blob/<uuid> or a blob uuid"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("template-1", f'nvram_template "template-1": {FORMS}'),
        ("sf://snapshot/" + "c3a9e2d4-77f0-4f5e-b0d6-1d2e3f405162", FORMS),
        ("sf://blob/x", "sf:// bases are"),
        ("label:a/b", "a label name is one path segment"),
    ],
)
def test_an_nvram_template_names_a_blob_or_is_refused(template: str, message: str) -> None:
    assert message in refusal(request(uefi=True, nvram_template=template))


def test_an_nvram_template_needs_uefi() -> None:
    assert refusal(request(nvram_template="label:vars")) == (
        "nvram_template requires UEFI be enabled"
    )
