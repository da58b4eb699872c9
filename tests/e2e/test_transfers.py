"""Uploads and blob data through the whole mesh: the api's TransferService
relaying to the node agent's upload and blob files.

- `sf-client artifact upload` (the CLI's real loop: create, appends sized
  for ~3 s each, convert) of a few MiB, then `sf-client artifact download`
  (sliced reads of `GET /blobs/{uuid}/data`) gives the same bytes back; a
  second upload of the same file is deduped by checksum onto the same blob.
- REST: append, truncate, a truncate past the end, another namespace's
  upload (404 on append, truncate, convert), an empty upload (409, nothing
  written), blob data by offset and limit and by Range (206 + Content-Range,
  416), a blob another namespace cannot reach (404).
- An instance boots from `sf://upload/<ns>/<name>` of an uploaded boot sector.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from guests.bootsector import boot_sector
from tests.e2e.test_artifact_flow import boot
from tests.e2e.test_official_client import SF_CLIENT
from tests.meshes import tenant

pytestmark = pytest.mark.slow
RUN = uuid.uuid4().hex[:6]
OCTETS = {"Content-Type": "application/octet-stream"}
OTHER = f"xfer-other-{RUN}"


def _ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, f"{reply.request.method} {reply.request.url}: {reply.text}"
    return reply.json()


def _refused(reply: httpx.Response, status: int, message: str | None = None) -> None:
    assert reply.status_code == status, reply.text
    if message is not None:
        assert reply.json()["error"] == message, reply.text


def _sf_client(*args: str) -> str:
    """Run `sf-client` (text output); what it printed."""
    done = subprocess.run(
        [SF_CLIENT, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _created_artifact(printed: str) -> str:
    (line,) = [line for line in printed.splitlines() if line.startswith("Created artifact ")]
    return line.removeprefix("Created artifact ").strip()


def _upload(rest: httpx.Client, content: bytes) -> dict[str, Any]:
    upload = _ok(rest.post("/upload"))
    if content:
        size = _ok(rest.post(f"/upload/{upload['uuid']}", content=content, headers=OCTETS))
        assert size == len(content)
    return dict(upload)


@pytest.fixture(scope="module")
def cli(mesh: Mesh, isolated_home: Path) -> None:
    """`sf-client` configured by ~/.shakenfist, as system."""
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )


@pytest.fixture(scope="module")
def other(mesh: Mesh, token: str) -> Iterator[httpx.Client]:
    """A client of another namespace."""
    with tenant(mesh, token, OTHER) as client:
        yield client


def test_cli_upload_download_and_dedupe(cli: None, rest: httpx.Client, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 4321))
    digest = hashlib.sha512(source.read_bytes()).hexdigest()

    printed = _sf_client("artifact", "upload", f"cli-{RUN}", str(source))
    assert "Uploading new blob" in printed
    artifact = _ok(rest.get(f"/artifacts/{_created_artifact(printed)}"))
    assert (artifact["state"], artifact["index"]) == ("created", 1)
    assert artifact["source_url"] == f"sf://upload/system/cli-{RUN}"
    blob = _ok(rest.get(f"/blobs/{artifact['blob_uuid']}"))
    assert (blob["sha512"], blob["size"], blob["reference_count"]) == (
        digest,
        source.stat().st_size,
        1,
    )

    destination = tmp_path / "downloaded.bin"
    _sf_client("artifact", "download", f"cli-{RUN}", str(destination))
    assert destination.read_bytes() == source.read_bytes()

    again = _sf_client("artifact", "upload", f"cli-again-{RUN}", str(source))
    assert "Recycling existing blob" in again
    twin = _ok(rest.get(f"/artifacts/{_created_artifact(again)}"))
    assert twin["blob_uuid"] == artifact["blob_uuid"]
    same = [b for b in _ok(rest.get("/blobs")) if b["sha512"] == digest]
    assert [b["uuid"] for b in same] == [artifact["blob_uuid"]]  # Q11: no second blob
    assert same[0]["reference_count"] == 2


def test_cli_upload_without_checksum_reuses_the_blob(
    cli: None, rest: httpx.Client, tmp_path: Path
) -> None:
    source = tmp_path / "twice.bin"
    source.write_bytes(os.urandom(200_000))
    digest = hashlib.sha512(source.read_bytes()).hexdigest()
    first = _created_artifact(_sf_client("artifact", "upload", f"nock-{RUN}", str(source)))
    second = _created_artifact(
        _sf_client("artifact", "upload", "--no-checksum", f"nock2-{RUN}", str(source))
    )
    blobs = [_ok(rest.get(f"/artifacts/{ref}"))["blob_uuid"] for ref in (first, second)]
    assert blobs[0] == blobs[1]
    live = [b for b in _ok(rest.get("/blobs")) if b["sha512"] == digest]
    assert [b["uuid"] for b in live] == [blobs[0]]


def test_append_and_truncate(rest: httpx.Client, other: httpx.Client) -> None:
    upload = _upload(rest, b"")
    assert (upload["state"], upload["version"], upload["size"]) == ("created", 3, 0)
    path = f"/upload/{upload['uuid']}"
    assert _ok(rest.post(path, content=b"0123456789", headers=OCTETS)) == 10
    assert _ok(rest.post(path, content=b'{"json": "looking"}', headers=OCTETS)) == 29  # Q17
    assert _ok(rest.post(f"{path}/truncate/4")) is None
    assert _ok(rest.post(path, content=b"45", headers=OCTETS)) == 6
    _refused(rest.post(f"{path}/truncate/7"), 400)
    _refused(rest.post(f"{path}/truncate/nope"), 400)

    _refused(other.post(path, content=b"x", headers=OCTETS), 404, "upload not found")
    _refused(other.post(f"{path}/truncate/0"), 404, "upload not found")
    _refused(
        other.post(f"/artifacts/upload/theirs-{RUN}", json={"upload_uuid": upload["uuid"]}),
        404,
        "upload not found",
    )
    _refused(rest.post(f"/upload/{uuid.uuid4()}", content=b"x", headers=OCTETS), 404)

    artifact = _ok(rest.post(f"/artifacts/upload/rest-{RUN}", json={"upload_uuid": upload["uuid"]}))
    blob = _ok(rest.get(f"/blobs/{artifact['blob_uuid']}"))
    assert blob["sha512"] == hashlib.sha512(b"012345").hexdigest()
    _refused(rest.post(path, content=b"x", headers=OCTETS), 404, "upload not found")  # converted


def test_conversion_checks_come_first(rest: httpx.Client) -> None:
    empty = _upload(rest, b"")
    name = f"empty-{RUN}"
    _refused(rest.post(f"/artifacts/upload/{name}", json={"upload_uuid": empty["uuid"]}), 409)
    assert all(a.get("name") != name for a in _ok(rest.get("/artifacts")))
    full = _upload(rest, b"some bytes")
    both = {"upload_uuid": full["uuid"], "blob_uuid": str(uuid.uuid4())}
    _refused(
        rest.post(f"/artifacts/upload/{name}", json=both),
        400,
        "only specify one of upload_uuid and blob_uuid",
    )
    _refused(rest.post(f"/artifacts/upload/{name}", json={}), 400)
    wrong_type = {"upload_uuid": full["uuid"], "artifact_type": "label"}
    _refused(rest.post(f"/artifacts/upload/{name}", json=wrong_type), 400)
    nowhere = {"upload_uuid": full["uuid"], "namespace": f"missing-{RUN}"}
    _refused(rest.post(f"/artifacts/upload/{name}", json=nowhere), 404, "namespace not found")
    assert all(a.get("name") != name for a in _ok(rest.get("/artifacts")))
    other_type = {"upload_uuid": full["uuid"], "artifact_type": "other"}
    made = _ok(rest.post(f"/artifacts/upload/{name}", json=other_type))
    assert (made["artifact_type"], made["state"]) == ("other", "created")


def test_blob_data_by_offset_limit_and_range(rest: httpx.Client, other: httpx.Client) -> None:
    content = os.urandom(300_000)
    upload = _upload(rest, content)
    made = _ok(rest.post(f"/artifacts/upload/data-{RUN}", json={"upload_uuid": upload["uuid"]}))
    data = f"/blobs/{made['blob_uuid']}/data"

    whole = rest.get(data)
    assert (whole.status_code, whole.content) == (200, content)
    assert whole.headers["content-type"] == "application/octet-stream"
    assert rest.get(data, params={"offset": 1000, "limit": 5000}).content == content[1000:6000]
    assert rest.get(data, params={"offset": 299_000, "limit": 5000}).content == content[299_000:]
    past = rest.get(data, params={"offset": 400_000})
    assert (past.status_code, past.content) == (200, b"")
    _refused(rest.get(data, params={"offset": "x"}), 400)

    part = rest.get(data, headers={"Range": "bytes=100-199"})
    assert (part.status_code, part.content) == (206, content[100:200])
    assert part.headers["content-range"] == "bytes 100-199/300000"
    tail = rest.get(data, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, content[-10:])
    assert tail.headers["content-range"] == "bytes 299990-299999/300000"
    assert rest.get(data, headers={"Range": "bytes=300000-"}).status_code == 416
    ignored = rest.get(data, headers={"Range": "bytes=5-1"})
    assert (ignored.status_code, ignored.content) == (200, content)

    _refused(other.get(data), 404, "blob not found")
    _refused(rest.get(f"/blobs/{uuid.uuid4()}/data"), 404, "blob not found")


def test_an_instance_boots_from_an_uploaded_boot_sector(rest: httpx.Client) -> None:
    upload = _upload(rest, boot_sector())
    name = f"boot-{RUN}"
    _ok(rest.post(f"/artifacts/upload/{name}", json={"upload_uuid": upload["uuid"]}))
    instance = boot(rest, f"from-upload-{RUN}", f"sf://upload/system/{name}")
    _ok(rest.delete(f"/instances/{instance['uuid']}"))
