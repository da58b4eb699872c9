"""The real grpcurl against every service, through server reflection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devmesh.mesh import Mesh

pytestmark = pytest.mark.slow

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"

SERVICES = {
    "api": ["sfmesh.v1.InstanceService", "sfmesh.v1.AuthService", "sfmesh.v1.NetworkService"],
    "scheduler": ["sfmesh.v1.SchedulerService"],
    "eventlog": ["sfmesh.v1.EventLogService"],
    "node_agent": ["sfmesh.v1.NodeAgentService"],
}


def grpcurl(*args: str) -> str:
    done = subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_reflection_lists_every_contract(mesh: Mesh, service: str) -> None:
    listed = grpcurl(mesh.address(service), "list").split()
    assert "grpc.health.v1.Health" in listed
    for name in SERVICES[service]:
        assert name in listed
        assert len(grpcurl(mesh.address(service), "list", name).split()) >= 2


def test_describe_shows_http_rules_and_comments(mesh: Mesh) -> None:
    described = grpcurl(mesh.address("api"), "describe", "sfmesh.v1.InstanceService")
    assert 'get:"/instances" response_body:"instances"' in described
    assert 'get:"/instances/{ref}/events:watch"' in described
    # The contract's comments travel with the descriptors.
    assert "Lists the instances the caller can see." in described


def test_list_instances_with_token(mesh: Mesh, token: str) -> None:
    reply = grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        '{"all": true}',
        mesh.address("api"),
        "sfmesh.v1.InstanceService/ListInstances",
    )
    assert isinstance(json.loads(reply), dict)


def test_list_instances_without_token_is_refused(mesh: Mesh) -> None:
    done = subprocess.run(
        [GRPCURL, "-plaintext", mesh.address("api"), "sfmesh.v1.InstanceService/ListInstances"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "Unauthenticated" in done.stdout + done.stderr


def test_list_instances_pages_for_grpc_clients(mesh: Mesh, token: str, rest: httpx.Client) -> None:
    for number in range(5):
        body = {"name": f"paged-{number}", "cpus": 1, "memory": 256, "disk": [{"size": 1}]}
        assert rest.post("/instances", json=body).status_code == 200
    auth = ("-H", f"authorization: Bearer {token}")
    method = "sfmesh.v1.InstanceService/ListInstances"
    everything = json.loads(grpcurl(*auth, "-d", '{"all": true}', mesh.address("api"), method))
    total = len(everything.get("instances", []))
    assert total >= 5
    seen: list[str] = []
    page_token = ""
    while True:
        query = json.dumps({"all": True, "page_size": 2, "page_token": page_token})
        page = json.loads(grpcurl(*auth, "-d", query, mesh.address("api"), method))
        seen += [instance["uuid"] for instance in page.get("instances", [])]
        page_token = page.get("nextPageToken", "")  # grpcurl prints JSON names
        if not page_token:
            break
    assert len(seen) == len(set(seen)) >= total
