"""Artifacts, labels and blobs through the whole mesh: REST, the official
client 0.8.3 and `sf-client`.

Blobs here are written straight into etcd (tests/e2e/blobs.py), as a node
agent records one it fetched: the fetch itself is the node agent's side of
issue 13 (tests/e2e/test_artifact_flow.py follows a real fetch). A cache
request here is followed to the node agent's refusal of an unreachable URL.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sfmesh.v1 import records_pb2
from shakenfist_client import apiclient

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from tests.e2e.blobs import put_blob, read_record
from tests.e2e.test_official_client import SF_CLIENT, sf_client
from tests.e2e.test_vms import wait_for
from tests.meshes import login, tenant

RUN = uuid.uuid4().hex[:6]


def _ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, f"{reply.request.method} {reply.request.url}: {reply.text}"
    return reply.json()


def _refused(reply: httpx.Response, status: int, message: str) -> None:
    assert (reply.status_code, reply.json()["error"]) == (status, message), reply.text


@pytest.fixture(scope="module")
def client(mesh: Mesh, isolated_home: Path) -> Iterator[apiclient.Client]:
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    yield apiclient.Client(async_strategy=apiclient.ASYNC_CONTINUE)


@pytest.fixture(scope="module")
def team(mesh: Mesh, token: str) -> Iterator[httpx.Client]:
    """A namespace of its own, as a REST client."""
    name = f"art-{RUN}"
    with httpx.Client(
        base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as system:
        _ok(system.post("/auth/namespaces", json={"namespace": name, "key_name": "k", "key": "s"}))
        headers = {"Authorization": f"Bearer {login(mesh, name, 's')}"}
        with httpx.Client(base_url=mesh.gateway_url, headers=headers, timeout=30) as rest:
            yield rest
        system.request("DELETE", "/instances", json={"confirm": True, "namespace": name})
        system.request("DELETE", "/artifacts", json={"confirm": True, "namespace": name})


def test_a_label_of_a_blob_through_every_route(
    mesh: Mesh, rest: httpx.Client, team: httpx.Client
) -> None:
    blob = put_blob(mesh, f"label {RUN}".encode())
    # The team does not reach the blob yet: nothing holds it that it sees.
    _refused(team.post(f"/label/l-{RUN}", json={"blob_uuid": blob["uuid"]}), 404, "blob not found")
    _refused(team.get(f"/blobs/{blob['uuid']}"), 404, "blob not found")
    assert team.get(f"/blob_checksums/sha512/{blob['sha512']}").json() is None

    label = _ok(rest.post(f"/label/l-{RUN}", json={"blob_uuid": blob["uuid"]}))
    assert (label["state"], label["artifact_type"], label["index"]) == ("created", "label", 1)
    assert label["source_url"] == f"sf://label/system/l-{RUN}"
    assert label["blobs"]["1"]["reference_count"] == 1
    again = _ok(rest.post(f"/label/l-{RUN}", json={"blob_uuid": blob["uuid"]}))
    assert again["index"] == 1  # the same blob again adds nothing
    assert _ok(rest.get(f"/label/l-{RUN}"))["uuid"] == label["uuid"]
    assert _ok(rest.get(f"/label/system/l-{RUN}"))["uuid"] == label["uuid"]
    _refused(rest.get(f"/label/none-{RUN}"), 404, f"label none-{RUN} not found")

    shown = _ok(rest.get(f"/blobs/{blob['uuid']}"))
    assert (shown["reference_count"], shown["instances"]) == (1, [])
    found = _ok(rest.get(f"/blob_checksums/sha512/{blob['sha512']}"))
    assert found["uuid"] == blob["uuid"]
    assert rest.get(f"/blob_checksums/sha256/{blob['sha512']}").json() is None
    _refused(rest.get(f"/blob_checksums/md5/{blob['sha512']}"), 400, "unknown hash algorithm")
    assert blob["uuid"] in [b["uuid"] for b in _ok(rest.get("/blobs"))]
    _refused(team.get("/blobs"), 403, "only the system namespace may list blobs")

    versions = _ok(rest.get(f"/artifacts/{label['uuid']}/versions"))
    assert [(v["index"], v["uuid"]) for v in versions] == [(1, blob["uuid"])]
    _ok(rest.put(f"/blobs/{blob['uuid']}/metadata/colour", json={"value": "blue"}))
    assert _ok(rest.get(f"/blobs/{blob['uuid']}/metadata")) == {"colour": "blue"}

    deleted = _ok(rest.delete(f"/label/l-{RUN}"))
    assert deleted["state"] == "deleted"
    assert _ok(rest.get(f"/blobs/{blob['uuid']}"))["state"] == "deleted"  # its last reference
    _refused(rest.get(f"/label/l-{RUN}"), 404, f"label l-{RUN} not found")


def test_a_label_in_a_namespace_not_trusting_the_caller_is_404(
    mesh: Mesh, team: httpx.Client
) -> None:
    blob = put_blob(mesh, f"foreign {RUN}".encode())
    reply = team.post(f"/label/system/x-{RUN}", json={"blob_uuid": blob["uuid"]})
    _refused(reply, 404, "namespace not found")
    _refused(team.get(f"/label/system/x-{RUN}"), 404, "namespace not found")
    stored = read_record(mesh, "blob", blob["uuid"])
    assert stored is not None
    assert records_pb2.BlobRecord.FromString(stored).blob.reference_count == 0


def test_a_blobs_events_and_checksum_to_those_who_read_it(
    mesh: Mesh, rest: httpx.Client, team: httpx.Client, client: apiclient.Client
) -> None:
    """GET /blobs/{uuid}/events and /checksum/{algorithm} through REST, the
    official client and sf-client: the blob's readers only, bad input
    refused with nothing changed."""
    blob = put_blob(mesh, f"events {RUN}".encode())
    events, checksum = f"/blobs/{blob['uuid']}/events", f"/blobs/{blob['uuid']}/checksum"
    _ok(rest.put(f"/blobs/{blob['uuid']}/metadata/colour", json={"value": "blue"}))
    _ok(rest.delete(f"/blobs/{blob['uuid']}/metadata/colour"))
    # The team reaches the blob through none of its artifacts: it is not there.
    _refused(team.get(events), 404, "blob not found")
    _refused(team.get(f"{checksum}/sha512"), 404, "blob not found")
    _refused(team.get(f"{checksum}/md5"), 404, "blob not found")  # the blob first, as upstream

    def audits() -> list[str]:
        return [e["message"] for e in _ok(rest.get(events, params={"event_type": "audit"}))]

    wanted = ["delete metadata key request from REST API", "set metadata key request from REST API"]
    assert wait_for(lambda: audits() == wanted)  # newest first
    assert len(_ok(rest.get(events, params={"limit": "1"}))) == 1  # a string, as the CLI sends
    mutations = _ok(rest.request("GET", events, json={"event_type": "mutate"}))  # as the client
    assert [e["message"] for e in mutations] == ["set attribute", "set attribute"]
    assert rest.get(events, params={"event_type": "bogus"}).status_code == 400
    assert _ok(rest.get(f"{checksum}/sha512")) == blob["sha512"]

    # Labelled in the team's namespace, the blob is the team's to read too.
    _ok(rest.post(f"/label/art-{RUN}/ev-{RUN}", json={"blob_uuid": blob["uuid"]}))
    assert _ok(team.get(f"{checksum}/sha512")) == blob["sha512"]
    assert wanted[0] in [e["message"] for e in _ok(team.get(events))]

    before = read_record(mesh, "blob", blob["uuid"])
    for algorithm in ("sha1", "sha256", "xxh128"):
        _refused(
            team.get(f"{checksum}/{algorithm}"),
            400,
            f"sfmesh records only the sha512 of a blob, not its {algorithm}",
        )
    _refused(team.get(f"{checksum}/md5"), 400, "unknown hash algorithm")
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        _refused(team.get(f"/blobs/{bad}/checksum/sha512"), 404, "blob not found")
        _refused(rest.get(f"/blobs/{bad}/events"), 404, "blob not found")
    assert read_record(mesh, "blob", blob["uuid"]) == before  # refusals changed nothing

    making = put_blob(mesh, f"initial {RUN}".encode(), initial=True)
    assert _ok(rest.get(f"/blobs/{making['uuid']}/checksum/sha512")) is None  # none yet

    assert client.get_blob_hash(blob["uuid"], "sha512") == blob["sha512"]
    listed = client.get_blob_events(blob["uuid"], event_type="audit", limit="5")
    assert [e["message"] for e in listed] == wanted
    assert wanted[1] in [e["message"] for e in sf_client("blob", "events", blob["uuid"])]


def test_versions_max_versions_share_metadata_events_delete(
    mesh: Mesh, rest: httpx.Client, team: httpx.Client
) -> None:
    blobs = [put_blob(mesh, f"v{n} {RUN}".encode()) for n in range(4)]
    name = f"versions-{RUN}"
    for blob in blobs:
        label = _ok(rest.post(f"/label/{name}", json={"blob_uuid": blob["uuid"]}))
    assert label["index"] == 4 and sorted(label["blobs"]) == ["2", "3", "4"]  # 3 kept
    assert _ok(rest.get(f"/blobs/{blobs[0]['uuid']}"))["state"] == "deleted"  # pruned
    ref = label["uuid"]

    for bad in (0, "x"):
        assert (
            rest.post(f"/artifacts/{ref}/versions", json={"max_versions": bad}).status_code == 400
        )
    assert _ok(rest.post(f"/artifacts/{ref}/versions", json={"max_versions": 2})) is None
    assert sorted(_ok(rest.get(f"/artifacts/{ref}"))["blobs"]) == ["3", "4"]
    _refused(rest.delete(f"/artifacts/{ref}/versions/x"), 400, "version index is not an integer")
    _refused(rest.delete(f"/artifacts/{ref}/versions/1"), 404, "artifact index not found")
    after = _ok(rest.delete(f"/artifacts/{ref}/versions/3"))
    assert sorted(after["blobs"]) == ["4"] and after["state"] == "created"

    _refused(rest.post(f"/artifacts/{ref}/unshare"), 403, "artifact not shared")
    assert _ok(rest.post(f"/artifacts/{ref}/share"))["shared"] is True
    # Shared: the team reads it (Q1) but may not change it.
    assert _ok(team.get(f"/artifacts/{ref}"))["uuid"] == ref
    assert ref in [a["uuid"] for a in _ok(team.get("/artifacts"))]
    _refused(team.delete(f"/artifacts/{ref}"), 404, "artifact not found")
    _refused(team.get(f"/artifacts/{ref}/metadata"), 404, "artifact not found")
    assert _ok(rest.post(f"/artifacts/{ref}/unshare"))["shared"] is False
    _refused(team.get(f"/artifacts/{ref}"), 404, "artifact not found")

    _ok(rest.post(f"/artifacts/{ref}/metadata", json={"key": "k", "value": 1}))
    assert _ok(rest.get(f"/artifacts/{ref}/metadata")) == {"k": 1}
    _ok(rest.delete(f"/artifacts/{ref}/metadata/k"))
    messages = {e["message"] for e in _ok(rest.get(f"/artifacts/{ref}/events"))}
    assert {
        "create request from REST API",
        "max versions set from REST API",
        "artifact share request from REST API",
        "set metadata key request from REST API",
    } <= messages

    gone = _ok(rest.delete(f"/artifacts/{ref}"))
    assert gone["state"] == "deleted"
    assert _ok(rest.delete(f"/artifacts/{ref}"))["state"] == "deleted"  # twice: no change
    assert _ok(rest.get(f"/blobs/{blobs[3]['uuid']}"))["reference_count"] == 0


def test_deleting_a_namespace_deletes_its_artifacts(
    mesh: Mesh, rest: httpx.Client, token: str, client: apiclient.Client
) -> None:
    """§9.7 "namespace gone": refused while the namespace has an instance
    (its artifacts untouched), then, through the official client, its
    artifacts deleted and their blobs let go of as an artifact delete does."""
    name = f"gone-{RUN}"
    blob = put_blob(mesh, f"namespace {RUN}".encode())
    with tenant(mesh, token, name) as own:
        label = _ok(rest.post(f"/label/{name}/l-{RUN}", json={"blob_uuid": blob["uuid"]}))
        _ok(rest.post(f"/label/kept-{RUN}", json={"blob_uuid": blob["uuid"]}))  # system's own
        disk = [{"size": 1}]
        made = _ok(
            own.post("/instances", json={"name": "b", "cpus": 1, "memory": 256, "disk": disk})
        )
        before = read_record(mesh, "artifact", label["uuid"])
        _refused(
            rest.delete(f"/auth/namespaces/{name}"),
            400,
            "you cannot delete a namespace with instances",
        )
        assert read_record(mesh, "artifact", label["uuid"]) == before
        assert _ok(rest.get(f"/blobs/{blob['uuid']}"))["reference_count"] == 2
        _ok(own.delete(f"/instances/{made['uuid']}"))
        wait_for(lambda: _ok(rest.get(f"/instances/{made['uuid']}"))["state"] == "deleted")

    client.delete_namespace(name)
    gone = _ok(rest.get(f"/artifacts/{label['uuid']}"))
    assert gone["state"] == "deleted" and gone["blobs"]["1"]["uuid"] == blob["uuid"]
    assert _ok(rest.get(f"/blobs/{blob['uuid']}"))["reference_count"] == 1  # system's label

    def audits() -> list[str]:
        events = client.get_artifact_events(label["uuid"], event_type="audit")
        return [e["message"] for e in events]

    assert wait_for(lambda: "deletion request via namespace deletion from REST API" in audits())
    _ok(rest.delete(f"/label/kept-{RUN}"))
    assert _ok(rest.get(f"/blobs/{blob['uuid']}"))["state"] == "deleted"  # its last reference


def test_cache_asks_a_node_to_fetch_and_a_failure_is_an_error(
    mesh: Mesh, rest: httpx.Client, team: httpx.Client, client: apiclient.Client
) -> None:
    url = f"http://127.0.0.1:1/cache-{RUN}.qcow2"
    _refused(
        team.post("/artifacts", json={"url": url, "shared": True}),
        403,
        "only the system namespace can create shared artifacts",
    )
    _refused(
        team.post("/artifacts", json={"url": url, "namespace": "system"}),
        404,
        "namespace not found",
    )
    assert team.post("/artifacts", json={"url": "sf://blob/x"}).status_code == 400
    assert f"cache-{RUN}" not in json.dumps(_ok(rest.get("/artifacts")))  # refusals wrote none

    made = client.cache_artifact(url)
    assert (made["state"], made["index"], made["blobs"]) == ("initial", 0, {})
    assert made["name"] == f"cache-{RUN}.qcow2"
    # The node agent asked to fetch it finds nothing listening on port 1.
    failed = wait_for(lambda: (a := client.get_artifact(made["uuid"]))["state"] == "error" and a)
    assert failed["error_message"], failed
    stored = read_record(mesh, "artifact", made["uuid"])
    assert stored is not None
    assert not records_pb2.ArtifactRecord.FromString(stored).fetch_node  # answered
    assert client.get_artifact(f"cache-{RUN}.qcow2")["uuid"] == made["uuid"]
    assert made["uuid"] in [a["uuid"] for a in client.get_artifacts()]
    assert client.get_artifact_versions(made["uuid"]) == []
    listed = sf_client("artifact", "list")
    assert made["uuid"] in json.dumps(listed)
    assert client.delete_artifact(made["uuid"])["state"] == "deleted"


def test_instance_bases_resolve_before_anything_is_written(
    mesh: Mesh, rest: httpx.Client, team: httpx.Client
) -> None:
    def create(client: httpx.Client, base: str, **extra: Any) -> httpx.Response:
        body = {"name": f"b-{RUN}", "cpus": 1, "memory": 256, "disk": [{"size": 1, "base": base}]}
        return client.post("/instances", json={**body, **extra})

    def counts() -> tuple[int, int]:
        return len(_ok(rest.get("/instances"))), len(_ok(rest.get("/artifacts")))

    before = counts()
    _refused(create(team, f"label:none-{RUN}"), 404, "artifact not found")
    _refused(create(team, f"sf://label/system/none-{RUN}"), 404, "artifact not found")
    _refused(create(team, f"sf://blob/{uuid.uuid4()}"), 404, "blob not found")
    _refused(create(team, f"sf://snapshot/{uuid.uuid4()}"), 404, "artifact not found")
    assert create(team, "sf://instance/x/vda").status_code == 400
    url = f"http://127.0.0.1:1/base-{RUN}.qcow2"
    # refused by the scheduler after the base was resolved: no artifact either
    assert create(team, url, memory=60_000_000).status_code == 507
    assert counts() == before

    blob = put_blob(mesh, f"base {RUN}".encode())
    _ok(rest.post(f"/label/system/golden-{RUN}", json={"blob_uuid": blob["uuid"]}))
    # system's label is not the team's: label: names the caller's own
    _refused(create(team, f"label:golden-{RUN}"), 404, "artifact not found")
    assert counts() == (before[0], before[1] + 1)  # only the label

    made = _ok(create(team, url))
    images = [a for a in _ok(team.get("/artifacts")) if a["source_url"] == url]
    assert len(images) == 1 and images[0]["namespace"] == f"art-{RUN}"
    # there at once; the node agent's fetch from port 1 may already have failed
    assert images[0]["state"] in ("initial", "error")
    _ok(team.delete(f"/instances/{made['uuid']}"))


def test_the_official_client_and_namespace_clean(
    mesh: Mesh, client: apiclient.Client, token: str
) -> None:
    """Labels, blobs, versions and events through client 0.8.3; then
    `sf-client namespace clean` ends with `DELETE /artifacts`."""
    name = f"clean-{RUN}"
    with httpx.Client(
        base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as system:
        _ok(system.post("/auth/namespaces", json={"namespace": name, "key_name": "k", "key": "s"}))
    blob = put_blob(mesh, f"client {RUN}".encode())
    label = client.update_label(f"{name}/c-{RUN}", blob["uuid"])
    assert (label["namespace"], label["index"]) == (name, 1)
    assert client.get_blob(blob["uuid"])["sha512"] == blob["sha512"]
    assert client.get_blob_by_sha512(blob["sha512"])["uuid"] == blob["uuid"]
    assert client.get_blob_by_sha512("00" * 64) is None
    client.set_artifact_max_versions(label["uuid"], 5)
    assert client.get_artifact(label["uuid"])["max_versions"] == 5
    assert [v["uuid"] for v in client.get_artifact_versions(label["uuid"])] == [blob["uuid"]]
    events = client.get_artifact_events(label["uuid"], limit="5")
    assert "max versions set from REST API" in {e["message"] for e in events}
    assert sf_client("blob", "show", blob["uuid"])["uuid"] == blob["uuid"]

    done = subprocess.run(
        [SF_CLIENT, "--json", "namespace", "clean", "--confirm", "--namespace", name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert client.get_artifact(label["uuid"])["state"] == "deleted"
    assert client.get_blob(blob["uuid"])["state"] == "deleted"
    assert client.delete_all_artifacts(name) == []  # already clean: nothing again (Q4)
