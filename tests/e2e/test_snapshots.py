"""Instance snapshots end to end (artifacts reference §7): a running
boot-sector instance's disk copied by libvirt's backup job into a snapshot
artifact's new version, an instance booted from `sf://snapshot/<artifact>`,
a stopped instance copied by qemu-img, the official CLI's snapshot flow and
`instance show --snapshots`, and the refusals."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from tests.e2e.test_artifact_flow import boot, gone, ok
from tests.e2e.test_official_client import SF_CLIENT
from tests.e2e.test_vms import view, wait_for
from tests.meshes import tenant

RUN = uuid.uuid4().hex[:6]
OTHER = f"snap-other-{RUN}"
CLIENT_BODY = {"all": False, "device": None, "thin": False}
"""What the official client always sends."""


@pytest.fixture
def running(rest: httpx.Client) -> Iterator[dict[str, Any]]:
    """A running boot-sector instance of system's (one per test: it boots at once)."""
    instance = boot(rest, f"snap-{uuid.uuid4().hex[:6]}", "debian:11")
    yield instance
    rest.delete(f"/instances/{instance['uuid']}")


@pytest.fixture(scope="module")
def other(mesh: Mesh, token: str) -> Iterator[httpx.Client]:
    """A client of another namespace."""
    with tenant(mesh, token, OTHER) as client:
        yield client


def _snapshotted(rest: httpx.Client, ref: str, blob_uuid: str) -> dict[str, Any]:
    """The list item of `blob_uuid`, once it is `created`."""

    def listed() -> dict[str, Any] | None:
        for item in ok(rest.get(f"/instances/{ref}/snapshot")):
            if item["blob_uuid"] == blob_uuid and item["state"] == "created":
                return dict(item)
        return None

    return dict(wait_for(listed, timeout=60))


def test_a_running_disk_becomes_a_version_and_boots(
    rest: httpx.Client, mesh: Mesh, running: dict[str, Any]
) -> None:
    uuid_ = running["uuid"]
    started = ok(rest.post(f"/instances/{uuid_}/snapshot", json=CLIENT_BODY))
    assert list(started) == ["vda"]
    vda = started["vda"]
    assert vda["source_url"] == f"sf://instance/{uuid_}/vda"
    item = _snapshotted(rest, uuid_, vda["blob_uuid"])
    assert (item["uuid"], item["device"], item["index"]) == (vda["artifact_uuid"], "vda", 1)
    assert (item["artifact_type"], item["namespace"], item["format"]) == (
        "snapshot",
        "system",
        "qcow2",
    )
    assert item["depends_on"] is None and item["locations"] == [mesh.node_name]
    assert item["created"] > 0 and len(item["sha512"]) == 128

    artifact = ok(rest.get(f"/artifacts/{vda['artifact_uuid']}"))
    assert (artifact["state"], artifact["index"], artifact["blob_uuid"]) == (
        "created",
        1,
        vda["blob_uuid"],
    )
    assert artifact["name"] == f"{uuid_}/vda"
    blob = ok(rest.get(f"/blobs/{vda['blob_uuid']}"))
    assert (blob["state"], blob["reference_count"]) == ("created", 1)

    copy = boot(rest, f"from-snap-{RUN}", f"sf://snapshot/{vda['artifact_uuid']}")
    assert copy["disks"][0]["blob_uuid"] == vda["blob_uuid"]
    ok(rest.delete(f"/instances/{copy['uuid']}"))
    gone(rest, copy["uuid"])
    not_ready = rest.post(f"/instances/{copy['uuid']}/snapshot", json=CLIENT_BODY)
    assert not_ready.status_code == 406
    assert not_ready.json()["error"] == f"instance {copy['uuid']} is not ready (deleted)"


def test_a_stopped_disk_is_copied_too(rest: httpx.Client, running: dict[str, Any]) -> None:
    uuid_ = running["uuid"]
    ok(rest.post(f"/instances/{uuid_}/poweroff"))
    try:
        started = ok(rest.post(f"/instances/{uuid_}/snapshot", json={"device": "vda"}))
        item = _snapshotted(rest, uuid_, started["vda"]["blob_uuid"])
        assert item["format"] == "qcow2" and item["size"] > 0
        assert view(rest, uuid_)["power_state"] == "off"  # copied by qemu-img
        again = ok(rest.post(f"/instances/{uuid_}/snapshot", json={}))  # the first disk
        assert again["vda"]["artifact_uuid"] == started["vda"]["artifact_uuid"]
        _snapshotted(rest, uuid_, again["vda"]["blob_uuid"])
        listed = ok(rest.get(f"/instances/{uuid_}/snapshot"))
        assert [(i["index"], i["blob_uuid"]) for i in listed] == [
            (1, started["vda"]["blob_uuid"]),
            (2, again["vda"]["blob_uuid"]),
        ]
    finally:
        ok(rest.post(f"/instances/{uuid_}/poweron"))


def test_the_official_cli_snapshots_and_shows(
    mesh: Mesh, isolated_home: Path, running: dict[str, Any]
) -> None:
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    done = subprocess.run(
        [SF_CLIENT, "--json", "--async", "pause", "instance", "snapshot", running["uuid"]],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"vda"' in done.stdout and '"blob_uuid"' in done.stdout
    shown = subprocess.run(
        [SF_CLIENT, "instance", "show", running["uuid"], "--snapshots"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Snapshots:" in shown.stdout and "device  : vda" in shown.stdout


def test_refusals(rest: httpx.Client, other: httpx.Client, running: dict[str, Any]) -> None:
    uuid_ = running["uuid"]
    assert ok(rest.post(f"/instances/{uuid_}/snapshot", json={"device": "vdz"})) == {}
    for reply in (
        other.post(f"/instances/{uuid_}/snapshot", json=CLIENT_BODY),
        other.get(f"/instances/{uuid_}/snapshot"),
    ):
        assert (reply.status_code, reply.json()["error"]) == (404, "instance not found")
    bad = rest.post(f"/instances/{uuid_}/snapshot", json={"max_versions": 0})
    assert bad.status_code == 400, bad.text
    assert rest.post(f"/instances/{uuid_}/snapshot", json={"label_name": "x"}).status_code == 400
    assert view(rest, uuid_)["state"] == "created"
