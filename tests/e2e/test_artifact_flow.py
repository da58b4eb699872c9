"""An image's whole life through the mesh, the api and node agents together:
cached from a loopback URL, fetched once by the node agent into a blob,
labelled, booted from the label and from the URL, its references counted up
by each instance's disk and back down by each delete."""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from devmesh.mesh import Mesh
from guests.bootsector import MARKER, boot_sector
from tests.e2e.test_vms import view, wait_for

if TYPE_CHECKING:
    from tests.conftest import ImageServer

pytestmark = pytest.mark.slow
RUN = uuid.uuid4().hex[:6]


def ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, f"{reply.request.method} {reply.request.url}: {reply.text}"
    return reply.json()


def settled(rest: httpx.Client, path: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = ok(rest.get(path))
        return dict(found) if found["state"] in ("created", "error") else None

    return dict(wait_for(done))


def boot(rest: httpx.Client, name: str, base: str) -> dict[str, Any]:
    spec = {"name": name, "cpus": 1, "memory": 128, "disk": [{"size": 1, "base": base}]}
    made = ok(rest.post("/instances", json=spec))
    instance = settled(rest, f"/instances/{made['uuid']}")
    assert instance["state"] == "created", instance.get("error_message")
    uuid_ = made["uuid"]
    wait_for(lambda: MARKER in rest.get(f"/instances/{uuid_}/consoledata").content, timeout=10)
    return instance


def gone(rest: httpx.Client, uuid_: str) -> None:
    wait_for(lambda: view(rest, uuid_)["state"] == "deleted")


def _references(rest: httpx.Client, blob_uuid: str) -> int:
    return int(ok(rest.get(f"/blobs/{blob_uuid}"))["reference_count"])


def test_cache_label_boot_and_give_back(
    rest: httpx.Client, mesh: Mesh, image_server: ImageServer
) -> None:
    name = f"flow-{RUN}.raw"
    url = image_server.publish(name, boot_sector())
    cached = ok(rest.post("/artifacts", json={"url": url}))
    assert (cached["state"], cached["index"], cached["blobs"]) == ("initial", 0, {})
    artifact = settled(rest, f"/artifacts/{cached['uuid']}")
    assert artifact["state"] == "created", artifact.get("error_message")
    assert artifact["index"] == 1
    blob_uuid = artifact["blob_uuid"]
    blob = ok(rest.get(f"/blobs/{blob_uuid}"))
    assert blob["locations"] == [mesh.node_name]
    assert blob["sha512"] == hashlib.sha512(boot_sector()).hexdigest()
    assert (blob["size"], blob["format"], blob["reference_count"]) == (512, "raw", 1)
    found = ok(rest.get(f"/blob_checksums/sha512/{blob['sha512']}"))
    # Earlier tests may hold blobs of the same boot sector: any of them answers.
    assert (found["sha512"], found["state"]) == (blob["sha512"], "created")

    label = ok(rest.post(f"/label/flow-{RUN}", json={"blob_uuid": blob_uuid}))
    assert label["blob_uuid"] == blob_uuid
    from_label = boot(rest, f"from-label-{RUN}", f"label:flow-{RUN}")
    # The URL matches the cached artifact: its blob is on the node, nothing is fetched.
    from_url = boot(rest, f"from-url-{RUN}", url)
    assert from_label["disks"][0]["blob_uuid"] == from_url["disks"][0]["blob_uuid"] == blob_uuid
    assert image_server.hits(name) == 1
    assert _references(rest, blob_uuid) == 4  # image version, label version, two disks
    shown = ok(rest.get(f"/artifacts/{cached['uuid']}"))
    assert sorted(shown["blobs"]["1"]["instances"]) == sorted(
        [from_label["uuid"], from_url["uuid"]]
    )

    for instance in (from_label, from_url):
        ok(rest.delete(f"/instances/{instance['uuid']}"))
    for instance in (from_label, from_url):
        gone(rest, instance["uuid"])
    assert _references(rest, blob_uuid) == 2
    ok(rest.delete(f"/label/flow-{RUN}"))
    ok(rest.delete(f"/artifacts/{cached['uuid']}"))
    assert ok(rest.get(f"/blobs/{blob_uuid}"))["state"] == "deleted"


def test_a_failed_fetch_is_an_error_with_its_reason_and_a_retry_may_succeed(
    rest: httpx.Client, image_server: ImageServer
) -> None:
    name = f"later-{RUN}.raw"
    url = image_server.url(name)  # nothing published yet: 404
    cached = ok(rest.post("/artifacts", json={"url": url}))
    failed = settled(rest, f"/artifacts/{cached['uuid']}")
    assert failed["state"] == "error"
    assert "404" in failed["error_message"], failed["error_message"]
    image_server.publish(name, boot_sector())
    again = ok(rest.post("/artifacts", json={"url": url}))
    fetched = settled(rest, f"/artifacts/{again['uuid']}")
    assert fetched["state"] == "created", fetched.get("error_message")
    ok(rest.delete(f"/artifacts/{again['uuid']}"))
