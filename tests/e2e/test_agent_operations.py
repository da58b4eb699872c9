"""Agent operations end to end (reference §5.5-§5.8) with the agent test
guest (the real shakenfist-agent 0.3.18): `sf-client instance execute`
prints the guest's kernel, `sf-client instance download` yields a guest
file's bytes, operations list, read and delete (their blobs with them), long
output moves into a blob, refusals are 400/404, and an operation errs within
its deadline when the agent does not answer or goes away."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from guests.agentguest import VARIANT_DIR
from tests.e2e.test_agent import BUILD_DIR, READY_TIMEOUT, agent_guest_url, agent_state
from tests.e2e.test_vms import created, wait_for
from tests.meshes import rest_client

pytestmark = pytest.mark.slow
__all__ = ["agent_guest_url"]

SF_CLIENT = str(Path(sys.executable).parent / "sf-client")
POWERED_OFF = "not ready (instance powered off)"


def kernel_version(image: Path) -> str:
    """The version of the kernel the guest image boots, read from its
    bzImage header (the string `kernel_version` points at)."""
    vmlinuz = subprocess.run(
        ["mcopy", "-i", f"{image}@@1M", "::/vmlinuz", "-"], capture_output=True, check=True
    ).stdout
    (offset,) = struct.unpack_from("<H", vmlinuz, 0x20E)
    return vmlinuz[offset + 0x200 :].split(b" ", 1)[0].decode()


@pytest.fixture(scope="module")
def guest(mesh: Mesh, token: str, agent_guest_url: str) -> Iterator[dict[str, Any]]:
    """An agent guest whose agent is ready."""
    with rest_client(mesh, token) as rest:
        yield from _ready_guest(rest, agent_guest_url)


def _ready_guest(rest: httpx.Client, agent_guest_url: str) -> Iterator[dict[str, Any]]:
    instance = created(
        rest, "agentops-guest", memory=512, disk=[{"size": 1, "base": agent_guest_url}]
    )
    assert instance["state"] == "created", instance.get("error_message")
    wait_for(lambda: agent_state(rest, instance["uuid"]) == "ready", timeout=READY_TIMEOUT)
    yield instance
    rest.delete(f"/instances/{instance['uuid']}")


@pytest.fixture(scope="module")
def cli(mesh: Mesh, isolated_home: Path) -> None:
    write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )


def sf_client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SF_CLIENT, *args], capture_output=True, text=True, timeout=120, check=False
    )


def run(rest: httpx.Client, uuid: str, verb: str, **body: Any) -> dict[str, Any]:
    """POST an operation and poll it until it settles."""
    reply = rest.post(f"/instances/{uuid}/agent/{verb}", json=body)
    assert reply.status_code == 200, reply.text
    operation = reply.json()
    assert operation["state"] == "queued"
    return settled(rest, operation["uuid"])


def settled(rest: httpx.Client, operation: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = rest.get(f"/agentoperations/{operation}").json()
        return found if found["state"] in ("complete", "error") else None

    return dict(wait_for(done, timeout=timeout))


def test_sf_client_execute_prints_the_guests_kernel(guest: dict[str, Any], cli: None) -> None:
    expected = kernel_version(BUILD_DIR / "agentguest.raw")
    done = sf_client("instance", "execute", guest["uuid"], "uname -r")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split(":", 1) == ["exit code     ", " 0"]
    assert lines[1] == f"stdout        : {expected}"


def test_sf_client_download_yields_the_files_bytes(
    guest: dict[str, Any], cli: None, tmp_path: Path
) -> None:
    target = tmp_path / "os-release"
    done = sf_client("instance", "download", guest["uuid"], "/etc/os-release", str(target))
    assert done.returncode == 0, done.stdout + done.stderr
    assert target.read_bytes() == (VARIANT_DIR / "os-release").read_bytes()


def test_sf_client_upload_puts_the_file_with_its_mode(
    rest: httpx.Client, guest: dict[str, Any], cli: None, tmp_path: Path
) -> None:
    source = tmp_path / "script.sh"
    content = b"#!/bin/sh\necho put\n" + bytes(range(256)) * 64  # a few chunks
    source.write_bytes(content)
    source.chmod(0o751)
    started = time.monotonic()
    done = sf_client("instance", "upload", guest["uuid"], str(source), "/tmp/put.sh")
    assert done.returncode == 0, done.stdout + done.stderr
    print(
        f"\nsf-client instance upload of {len(content)} bytes: {time.monotonic() - started:.1f} s"
    )
    checked = run(
        rest, guest["uuid"], "execute", command_line="sha512sum /tmp/put.sh; stat -c %a /tmp/put.sh"
    )
    digest, mode = checked["results"]["0"]["stdout"].split("\n")[:2]
    assert digest.split()[0] == hashlib.sha512(content).hexdigest()
    assert mode == "751"
    (operation,) = [
        o
        for o in rest.request(
            "GET", f"/instances/{guest['uuid']}/agentoperations", json={"all": True}
        ).json()
        if o["commands"][0]["command"] == "put-blob"
    ]
    assert operation["state"] == "complete"
    assert operation["results"] == {"0": {"path": "/tmp/put.sh"}, "1": {"path": "/tmp/put.sh"}}
    assert operation["commands"][1] == {"command": "chmod", "path": "/tmp/put.sh", "mode": 0o100751}


def test_list_read_and_delete_with_the_blob(rest: httpx.Client, guest: dict[str, Any]) -> None:
    uuid = guest["uuid"]
    fetched = run(rest, uuid, "get", path="/etc/os-release")
    assert fetched["state"] == "complete", fetched
    assert fetched["instance_uuid"] == uuid and fetched["namespace"] == "system"
    assert fetched["commands"] == [{"command": "get-file", "path": "/etc/os-release"}]
    assert fetched["error"] is None and fetched["metadata"] == {}
    result = fetched["results"]["0"]
    assert result["result"] is True and result["stat_result"]["size"] > 0
    blob = result["content_blob"]
    assert rest.get(f"/blobs/{blob}").json()["state"] == "created"

    assert rest.get(f"/instances/{uuid}/agentoperations").json() == []  # none waiting
    listed = rest.request("GET", f"/instances/{uuid}/agentoperations", json={"all": True}).json()
    assert fetched["uuid"] in [operation["uuid"] for operation in listed]

    deleted = rest.delete(f"/agentoperations/{fetched['uuid']}")
    assert deleted.status_code == 200 and deleted.json()["state"] == "deleted"
    assert rest.get(f"/agentoperations/{fetched['uuid']}").json()["state"] == "deleted"
    assert rest.delete(f"/agentoperations/{fetched['uuid']}").status_code == 200
    assert rest.get(f"/blobs/{blob}").json()["state"] == "deleted"
    listed = rest.request("GET", f"/instances/{uuid}/agentoperations", json={"all": True}).json()
    assert fetched["uuid"] not in [operation["uuid"] for operation in listed]


def test_long_output_moves_into_a_blob(rest: httpx.Client, guest: dict[str, Any]) -> None:
    done = run(rest, guest["uuid"], "execute", command_line="head -c 20000 /dev/zero | tr '\\0' a")
    result = done["results"]["0"]
    assert done["state"] == "complete" and result["return-code"] == 0, done
    assert "stdout" not in result and result["stderr"] == ""
    data = rest.get(f"/blobs/{result['stdout_blob']}/data")
    assert data.status_code == 200 and data.content == b"a" * 20000


def test_a_missing_file_errs_with_its_reason(rest: httpx.Client, guest: dict[str, Any]) -> None:
    done = run(rest, guest["uuid"], "get", path="/no/such/file")
    assert done["state"] == "error"
    assert done["error"] == "path does not exist"
    assert done["results"]["0"]["result"] is False


def test_refusals(rest: httpx.Client, guest: dict[str, Any]) -> None:
    uuid = guest["uuid"]
    missing = rest.post(f"/instances/{uuid}/agent/execute", json={})
    assert missing.status_code == 400 and missing.json()["error"] == "command_line is required"
    assert rest.post(f"/instances/{uuid}/agent/get", json={}).status_code == 400
    bad = rest.post(
        f"/instances/{uuid}/agent/execute", json={"command_line": "true", "deadline_seconds": 0}
    )
    assert bad.status_code == 400
    nothing = {"blob_uuid": "00000000-0000-0000-0000-000000000000", "path": "/x", "mode": 420}
    no_blob = rest.post(f"/instances/{uuid}/agent/put", json=nothing)
    assert no_blob.status_code == 404 and no_blob.json()["error"] == "blob not found"
    bad_mode = rest.post(f"/instances/{uuid}/agent/put", json={**nothing, "mode": "rwx"})
    assert bad_mode.status_code == 400 and bad_mode.json()["error"] == "invalid mode: rwx"
    unknown = rest.get("/agentoperations/00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404 and unknown.json()["error"] == "agent operation not found"
    bare = created(rest, "agentops-channelless", side_channels=[])
    refused = rest.post(f"/instances/{bare['uuid']}/agent/execute", json={"command_line": "true"})
    assert refused.status_code == 400, refused.text
    assert "sf-agent" in refused.json()["error"]
    rest.delete(f"/instances/{bare['uuid']}")


def test_operations_err_within_their_deadline(rest: httpx.Client, guest: dict[str, Any]) -> None:
    """Last: it leaves the guest powered off."""
    uuid = guest["uuid"]
    # An agent that does not answer in time (it is busy sleeping).
    started = time.monotonic()
    slow = run(rest, uuid, "execute", command_line="sleep 6", deadline_seconds=2)
    assert slow["state"] == "error" and "in time" in slow["error"], slow
    assert time.monotonic() - started < 6
    wait_for(lambda: agent_state(rest, uuid) == "ready", timeout=60)

    # An agent that goes away: the instance powered off mid-command.
    reply = rest.post(
        f"/instances/{uuid}/agent/execute",
        json={"command_line": "sleep 120", "deadline_seconds": 300},
    )
    operation = reply.json()["uuid"]
    wait_for(lambda: rest.get(f"/agentoperations/{operation}").json()["state"] == "executing")
    assert rest.post(f"/instances/{uuid}/poweroff").status_code == 200
    started = time.monotonic()
    gone = settled(rest, operation, timeout=30)
    assert gone["state"] == "error", gone
    print(f"\nagent gone -> operation error in {time.monotonic() - started:.1f} s: {gone['error']}")
    wait_for(lambda: agent_state(rest, uuid) == POWERED_OFF, timeout=30)
    off = rest.post(f"/instances/{uuid}/agent/execute", json={"command_line": "true"})
    assert off.status_code == 400
    assert off.json()["error"] == f"instance agent not ready ({POWERED_OFF})"
