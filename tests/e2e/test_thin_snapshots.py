"""Thin snapshots and NVRAM end to end (artifacts reference §7.1, §9.3,
§2.8): a running boot-sector instance's disk copied thin, its blob
`depends_on` the image's blob, which gains a reference; an instance booted
from the thin snapshot; the image's artifact deleted while the thin child
lives keeps the base blob, and the base goes once the child does; the
official CLI's `--thin` and `--flatten`; a UEFI instance's NVRAM snapshotted
with `all` (versioned before the answer) and used as another instance's
`nvram_template`, by `sf://blob/` and by label, resolved before anything is
written."""

from __future__ import annotations

import json
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import libvirt

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from guests.bootsector import boot_sector
from services.node_agent.naming import domain_name
from tests.e2e.test_artifact_flow import boot, gone, ok, settled
from tests.e2e.test_official_client import SF_CLIENT
from tests.e2e.test_vms import wait_for

if TYPE_CHECKING:
    from tests.conftest import ImageServer

RUN = uuid.uuid4().hex[:6]


def _image(rest: httpx.Client, image_server: ImageServer, name: str) -> dict[str, Any]:
    """A boot sector image artifact of this test's own, fetched: its view.
    A second sector of its own makes its content (and sha512) unique, so
    no other test's checksum search finds it."""
    unique = f"{name}-{RUN}-{uuid.uuid4()}".encode().ljust(512, b"\0")
    url = image_server.publish(f"{name}-{RUN}.raw", boot_sector() + unique)
    cached = ok(rest.post("/artifacts", json={"url": url}))
    artifact = settled(rest, f"/artifacts/{cached['uuid']}")
    assert artifact["state"] == "created", artifact.get("error_message")
    return artifact


def _snapshotted(rest: httpx.Client, ref: str, blob_uuid: str) -> dict[str, Any]:
    def listed() -> dict[str, Any] | None:
        for item in ok(rest.get(f"/instances/{ref}/snapshot")):
            if item["blob_uuid"] == blob_uuid and item["state"] in ("created", "error"):
                return dict(item)
        return None

    item = dict(wait_for(listed, timeout=60))
    assert item["state"] == "created", item
    return item


def _blob(rest: httpx.Client, blob_uuid: str) -> dict[str, Any]:
    return dict(ok(rest.get(f"/blobs/{blob_uuid}")))


def _blob_events(rest: httpx.Client, started: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a started snapshot's blob: why it failed, when it did."""
    return list(ok(rest.get(f"/blobs/{started['blob_uuid']}/events")))


def test_a_thin_snapshot_boots_and_keeps_its_base_while_it_lives(
    rest: httpx.Client, image_server: ImageServer
) -> None:
    image = _image(rest, image_server, "thin-base")
    base = image["blob_uuid"]
    first = boot(rest, f"thin-src-{RUN}", image["source_url"])
    assert first["disks"][0]["blob_uuid"] == base
    assert _blob(rest, base)["reference_count"] == 2  # the version's and the disk's

    started = ok(rest.post(f"/instances/{first['uuid']}/snapshot", json={"thin": True}))
    vda = started["vda"]
    item = _snapshotted(rest, first["uuid"], vda["blob_uuid"])
    assert (item["depends_on"], item["format"]) == (base, "qcow2")
    child = _blob(rest, vda["blob_uuid"])
    assert (child["depends_on"], child["reference_count"]) == (base, 1)
    assert child["size"] < 1 << 20  # the layer, not the 1 GiB disk
    assert _blob(rest, base)["reference_count"] == 3  # and the child's
    artifact = ok(rest.get(f"/artifacts/{vda['artifact_uuid']}"))
    assert artifact["blobs"]["1"]["depends_on"] == base

    from_thin = boot(rest, f"thin-copy-{RUN}", f"sf://snapshot/{vda['artifact_uuid']}")
    assert from_thin["disks"][0]["blob_uuid"] == vda["blob_uuid"]

    # The base's own artifact and instance go; the thin child holds it.
    ok(rest.delete(f"/instances/{first['uuid']}"))
    gone(rest, first["uuid"])
    ok(rest.delete(f"/artifacts/{image['uuid']}"))
    kept = _blob(rest, base)
    assert (kept["state"], kept["reference_count"]) == ("created", 1)
    again = boot(rest, f"thin-again-{RUN}", f"sf://snapshot/{vda['artifact_uuid']}")

    # The child goes (its artifact, then its instances): the base with it.
    ok(rest.delete(f"/artifacts/{vda['artifact_uuid']}"))
    assert _blob(rest, base)["state"] == "created"
    for instance in (from_thin, again):
        ok(rest.delete(f"/instances/{instance['uuid']}"))
        gone(rest, instance["uuid"])
    assert _blob(rest, vda["blob_uuid"])["state"] == "deleted"
    assert (_blob(rest, base)["state"], _blob(rest, base)["reference_count"]) == ("deleted", 0)


def test_the_official_cli_snapshots_thin_and_flat(
    rest: httpx.Client, mesh: Mesh, isolated_home: Path, image_server: ImageServer
) -> None:
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    image = _image(rest, image_server, "thin-cli")
    instance = boot(rest, f"thin-cli-{RUN}", image["source_url"])
    try:
        found = {}
        for flag in ("--thin", "--flatten"):
            done = subprocess.run(
                [SF_CLIENT, "--json", "instance", "snapshot", instance["uuid"], flag],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            blob_uuid = json.loads(done.stdout)["vda"]["blob_uuid"]
            found[flag] = _snapshotted(rest, instance["uuid"], blob_uuid)["depends_on"]
        assert found == {"--thin": image["blob_uuid"], "--flatten": None}
    finally:
        ok(rest.delete(f"/instances/{instance['uuid']}"))
        ok(rest.delete(f"/artifacts/{image['uuid']}"))


def _uefi(rest: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    """A UEFI instance, `created` (OVMF runs: it cannot boot the boot
    sector, which is BIOS code, so no marker is awaited)."""
    spec = {
        "name": name,
        "cpus": 1,
        "memory": 128,
        "uefi": True,
        "disk": [{"size": 1, "base": "debian:11"}],
        **fields,
    }
    made = ok(rest.post("/instances", json=spec))
    instance = settled(rest, f"/instances/{made['uuid']}")
    assert instance["state"] == "created", instance.get("error_message")
    return instance


def _nvram_template_of(mesh: Mesh, instance_uuid: str) -> str | None:
    """The template path of the instance's domain's NVRAM, as libvirt has it."""
    conn = libvirt.open("qemu:///system")
    try:
        xml = conn.lookupByName(domain_name(mesh.node_name, instance_uuid)).XMLDesc(0)
    finally:
        conn.close()
    nvram = ET.fromstring(xml).find("os/nvram")
    return None if nvram is None else nvram.get("template")


def test_a_uefi_instance_s_nvram_is_snapshotted_and_serves_as_a_template(
    rest: httpx.Client, mesh: Mesh
) -> None:
    source = _uefi(rest, f"uefi-src-{RUN}")
    started = ok(rest.post(f"/instances/{source['uuid']}/snapshot", json={"all": True}))
    assert sorted(started) == ["nvram", "vda"]
    nvram = started["nvram"]
    assert nvram["source_url"] == f"sf://instance/{source['uuid']}/nvram"
    # Versioned before the answer (§7.1): listed `created` at once.
    listed = ok(rest.get(f"/instances/{source['uuid']}/snapshot"))
    found = [i for i in listed if i["device"] == "nvram"]
    assert len(found) == 1, (listed, _blob(rest, nvram["blob_uuid"]), _blob_events(rest, nvram))
    (item,) = found
    assert (item["state"], item["format"], item["blob_uuid"]) == (
        "created",
        "raw",
        nvram["blob_uuid"],
    )
    assert item["size"] > 0 and len(item["sha512"]) == 128 and item["depends_on"] is None
    _snapshotted(rest, source["uuid"], started["vda"]["blob_uuid"])
    blob_uuid = nvram["blob_uuid"]

    refused = rest.post(
        "/instances",
        json={
            "name": f"uefi-bad-{RUN}",
            "cpus": 1,
            "memory": 128,
            "uefi": True,
            "nvram_template": f"sf://blob/{uuid.uuid4()}",
            "disk": [{"size": 1, "base": "debian:11"}],
        },
    )
    assert (refused.status_code, refused.json()["error"]) == (404, "blob not found")
    names = {i["name"] for i in ok(rest.get("/instances"))}
    assert f"uefi-bad-{RUN}" not in names  # resolved before anything was written

    by_blob = _uefi(rest, f"uefi-blob-{RUN}", nvram_template=f"sf://blob/{blob_uuid}")
    label = f"uefi-vars-{RUN}"
    ok(rest.post(f"/label/{label}", json={"blob_uuid": blob_uuid}))
    by_label = _uefi(rest, f"uefi-label-{RUN}", nvram_template=f"label:{label}")
    for instance in (by_blob, by_label):
        assert instance["nvram_template"] == blob_uuid
        template = _nvram_template_of(mesh, instance["uuid"])
        assert template is not None and template.endswith(f"/blobs/{blob_uuid[:2]}/{blob_uuid}")
    # The nvram version's, the label's and two instances' references.
    assert _blob(rest, blob_uuid)["reference_count"] == 4
    for instance in (by_blob, by_label, source):
        ok(rest.delete(f"/instances/{instance['uuid']}"))
        gone(rest, instance["uuid"])
    assert _blob(rest, blob_uuid)["reference_count"] == 2
