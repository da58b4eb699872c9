"""Every create rule through REST (reference §4, plus sfmesh's own): each row
checks the status, the message, and that nothing was written."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

VALID: dict[str, Any] = {"cpus": 1, "memory": 256, "disk": [{"size": 8, "base": "debian:11"}]}

RULES: list[tuple[str, dict[str, Any], int, str]] = [
    ("empty name", {"name": ""}, 400, "is not useable as a DNS and Linux host name"),
    ("dotted name", {"name": "a.b"}, 400, "is not useable as a DNS"),
    ("62 characters", {"name": "a" * 62}, 400, "is not useable as a DNS"),
    ("leading hyphen", {"name": "-web"}, 400, "is not useable as a DNS"),
    ("no cpus", {"cpus": 0}, 400, "cpus must be between 1 and 4096, not 0"),
    ("negative cpus", {"cpus": -2}, 400, "cpus must be between 1 and 4096, not -2"),
    ("absurd cpus", {"cpus": 5000}, 400, "cpus must be between 1 and 4096, not 5000"),
    ("cpus not a number", {"cpus": "many"}, 400, "cpus"),
    ("cpus not an integer", {"cpus": 1.5}, 400, "cpus"),
    ("cpus no node has", {"cpus": 16}, 507, "Requested vCPUs exceeds vCPU limit"),
    ("cpus over --max-cpus", {"cpus": 17}, 507, "exceeds vCPU limit (16 per instance)"),
    (
        "too little memory",
        {"memory": 64},
        400,
        "memory must be between 128 and 67108864 MiB, not 64",
    ),
    (
        "absurd memory",
        {"memory": 2**31 - 1},
        400,
        "memory must be between 128 and 67108864 MiB, not 2147483647",
    ),
    ("memory no node has", {"memory": 64 * 1024 * 1024}, 507, "No nodes with enough idle RAM"),
    ("no disk", {"disk": []}, 400, "instance must specify at least one disk"),
    ("zero size", {"disk": [{"size": 0}]}, 400, "disk[0].size must be a positive integer"),
    ("label base", {"disk": [{"base": "label:gold"}]}, 404, "artifact not found"),
    ("sf:// base", {"disk": [{"base": "sf://blob/x"}]}, 400, "sf:// bases are"),
    ("sf://instance base", {"disk": [{"base": "sf://instance/x/vda"}]}, 400, "sf:// bases are"),
    (
        "file:// base",
        {"disk": [{"base": "file:///etc/shadow"}]},
        400,
        "is neither an http or https URL",
    ),
    ("ftp:// base", {"disk": [{"base": "ftp://example.com/x.qcow2"}]}, 400, "is neither an http"),
    ("gopher:// base", {"disk": [{"base": "gopher://example.com/1"}]}, 400, "is neither an http"),
    ("path base", {"disk": [{"base": "/etc/shadow"}]}, 400, "nor an image shorthand"),
    ("unknown bus", {"disk": [{"bus": "floppy"}]}, 400, "disk[0].bus"),
    ("unknown disk type", {"disk": [{"type": "tape"}]}, 400, "disk[0].type"),
    ("disk not an object", {"disk": ["big"]}, 400, "disk[0]"),
    (
        "secure boot without uefi",
        {"secure_boot": True},
        400,
        "secure boot requires UEFI be enabled",
    ),
    (
        "ide with secure boot",
        {"uefi": True, "secure_boot": True, "disk": [{"bus": "ide"}]},
        400,
        "the ide bus is not available with secure_boot",
    ),
    (
        "user data not base64",
        {"user_data": "!!not base64!!"},
        400,
        "user_data must be valid base64",
    ),
    ("unknown config drive", {"configdrive": "floppy"}, 400, "configdrive"),
    ("unknown video model", {"video": {"model": "hologram"}}, 400, "video.model"),
    (
        "video without memory",
        {"video": {"model": "cirrus"}},
        400,
        'video specification requires "memory"',
    ),
    (
        "video without model",
        {"video": {"memory": 16384}},
        400,
        'video specification requires "model"',
    ),
    (
        "video memory too small",
        {"video": {"model": "bochs", "memory": 1024}},
        400,
        "video memory must be between 4096 and 262144 KiB, not 1024",
    ),
    (
        "tags not a list",
        {"metadata": {"tags": "web"}},
        400,
        'value for "tags" key should be a JSON list',
    ),
    (
        "affinity not integers",
        {"metadata": {"affinity": {"web": "lots"}}},
        400,
        "affinity dictionary values should be integers",
    ),
    ("falsy metadata value", {"metadata": {"owner": ""}}, 400, "no value specified"),
    (
        "unknown network",
        {"network": [{"network_uuid": "nowhere"}]},
        404,
        "network nowhere not found",
    ),
    (
        "networkspec without network_uuid",
        {"network": [{"address": "10.0.0.5"}]},
        400,
        "network specification is missing network_uuid",
    ),
    (
        "networkspec with an empty network_uuid",
        {"network": [{"network_uuid": ""}]},
        400,
        "network specification is missing network_uuid",
    ),
    ("unknown namespace", {"namespace": "nowhere"}, 404, "namespace not found"),
    ("unknown key", {"sshkey": "ssh-ed25519 AAAA"}, 400, "sshkey"),
    ("500 disks", {"disk": [{"size": 1}] * 500}, 400, "disk may have at most 16 entries, not 500"),
    (
        "17 networkspecs",
        {"network": [{"network_uuid": "n"}] * 17},
        400,
        "network may have at most 16 entries, not 17",
    ),
    (
        "long disk base",
        {"disk": [{"base": "https://example.com/" + "a" * 3000}]},
        400,
        "disk[0].base must be at most 2048 characters long, not 3020",
    ),
    (
        "long ssh_key",
        {"ssh_key": "ssh-ed25519 " + "A" * 20000},
        400,
        "ssh_key must be at most 16384 characters long, not 20012",
    ),
    (
        "long user_data",
        {"user_data": "QUFB" * 20000},
        400,
        "user_data must be at most 65535 characters long, not 80000",
    ),
    (
        "long metadata key",
        {"metadata": {"k" * 300: "v"}},
        400,
        "metadata key must be at most 256 characters long, not 300",
    ),
    (
        "big metadata value",
        {"metadata": {"blob": "v" * 20000}},
        400,
        'metadata value of "blob" must be at most 16384 bytes, not 20002',
    ),
    (
        "too many tags",
        {"metadata": {"tags": [f"t{i}" for i in range(65)]}},
        400,
        "tags may have at most 64 entries, not 65",
    ),
    (
        "too many metadata keys",
        {"metadata": {f"k{i}": "v" for i in range(65)}},
        400,
        "metadata may have at most 64 entries, not 65",
    ),
    ("camelCase key", {"sshKey": "ssh-ed25519 AAAA"}, 400, "sshKey"),
]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [pytest.param(change, status, message, id=rule) for rule, change, status, message in RULES],
)
def test_a_refused_create_says_why_and_writes_nothing(
    rest: httpx.Client, change: dict[str, Any], status: int, message: str
) -> None:
    name = f"refused-{uuid.uuid4().hex[:8]}"
    reply = rest.post("/instances", json={"name": name, **VALID, **change})
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]
    everything = rest.request("GET", "/instances", json={"all": True}).json()
    assert name not in [instance["name"] for instance in everything]


@pytest.mark.parametrize(
    "change",
    [
        {"disk": [{"bus": "ide"}]},
        {"disk": [{"size": 8}, {"type": "cdrom", "bus": "sata"}]},
        {"name": "a" * 61},
        {"name": "1234"},
        {"user_data": "I2Nsb3VkLWNvbmZpZwo="},
        {"video": {"model": "qxl", "memory": 65536, "vdi": "vnc"}},
        {"video": {"model": "virtio", "memory": 32768}},
        {"video": {"model": "bochs", "memory": "16384"}},
        {"video": {"model": "ramfb", "memory": 16384}},
        {"video": {"model": "none", "memory": 16384}},
        {"video": {}},
        {"metadata": {"tags": ["web"], "affinity": {"db": -5}}},
        {"uefi": True, "secure_boot": True},
    ],
)
def test_accepted_edge_cases(rest: httpx.Client, change: dict[str, Any]) -> None:
    reply = rest.post("/instances", json={"name": "edge", **VALID, **change})
    assert reply.status_code == 200, reply.text


def test_a_virtio_gpu_is_kept_as_given(rest: httpx.Client) -> None:
    video = {"model": "virtio", "memory": 32768}
    reply = rest.post("/instances", json={"name": "virtio-gpu", **VALID, "video": video})
    assert reply.status_code == 200, reply.text
    shown = rest.get(f"/instances/{reply.json()['uuid']}").json()["video"]
    assert shown == {**video, "vdi": "spice"}


def test_a_huge_name_is_400_with_a_bounded_message(rest: httpx.Client) -> None:
    """Once 429 `received metadata size exceeds hard limit`: the message
    echoed the whole name into gRPC's trailing metadata."""
    before = len(rest.request("GET", "/instances", json={"all": True}).json())
    reply = rest.post("/instances", json={**VALID, "name": "x" * 100_000})
    assert reply.status_code == 400, reply.text[:300]
    error = reply.json()["error"]
    assert error.startswith("instance name xxx") and "characters cut]" in error
    assert error.endswith("or hyphen (-).") and len(error) < 1100
    assert len(rest.request("GET", "/instances", json={"all": True}).json()) == before
