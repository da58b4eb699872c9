"""The whole mesh with TLS, as `make run RUN_ARGS=--tls` starts it: REST
over HTTPS for clients that trust the mesh CA (httpx, the official client,
sf-client), the api over TLS for grpcurl, and the internal services
answering nothing, not even a valid user token, to a caller without a
certificate of the mesh CA."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shakenfist_client import apiclient

from devmesh.client_config import CA_VARIABLE, write_client_config
from devmesh.mesh import Mesh
from launcher.tls import TlsDir, transport
from tests.e2e.test_grpcurl import GRPCURL
from tests.e2e.test_official_client import SF_CLIENT
from tests.e2e.test_vms import created
from tests.meshes import throwaway_mesh

INTERNAL = {
    "scheduler": "/sfmesh.v1.SchedulerService/ReleaseReservation",
    "eventlog": "/sfmesh.v1.EventLogService/List",
    "node_agent": "/sfmesh.v1.NodeAgentService/ReadConsole",
}
"""A unary RPC of each service that only the mesh calls."""
NODE = f"e2e-tls-{uuid.uuid4().hex[:6]}"
"""This mesh's node name: its domains are `sfmesh-<NODE>-<uuid>`."""


@pytest.fixture(scope="module")
def tls_mesh(boot_sector_url: str) -> Iterator[Mesh]:
    """Every role with TLS, on free ports, its `debian:11` the boot sector."""
    settings = {"SFMESH_IMAGE_SHORTHANDS": f"debian:11={boot_sector_url}"}
    with throwaway_mesh("e2e-tls", NODE, settings, tls=True) as running:
        yield running


@pytest.fixture(scope="module")
def certificates(tls_mesh: Mesh) -> TlsDir:
    assert tls_mesh.certificates is not None
    return tls_mesh.certificates


@pytest.fixture(scope="module")
def trusting(certificates: TlsDir) -> ssl.SSLContext:
    """An HTTPS client context that trusts the mesh CA."""
    return ssl.create_default_context(cafile=certificates.ca)


@pytest.fixture(scope="module")
def user_token(tls_mesh: Mesh, trusting: ssl.SSLContext) -> str:
    """A system token from POST /auth over HTTPS."""
    body = {"namespace": "system", "key": tls_mesh.system_key}
    reply = httpx.post(f"{tls_mesh.gateway_url}/auth", json=body, verify=trusting)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


def test_rest_over_https_creates_an_instance(
    tls_mesh: Mesh, trusting: ssl.SSLContext, user_token: str
) -> None:
    assert tls_mesh.gateway_url.startswith("https://")
    with httpx.Client(
        base_url=tls_mesh.gateway_url,
        headers={"Authorization": f"Bearer {user_token}"},
        verify=trusting,
        timeout=30,
    ) as rest:
        instance = created(rest, "over-tls")
        assert instance["state"] == "created", instance.get("error_message")
        rest.delete(f"/instances/{instance['uuid']}")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_mesh.gateway_url}/healthz")  # the system's CAs do not know the mesh's
    plain = tls_mesh.gateway_url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/healthz")


def test_the_official_client_trusts_the_ca_its_variable_names(
    tls_mesh: Mesh, certificates: TlsDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tls_mesh.system_key
    monkeypatch.delenv(CA_VARIABLE, raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        apiclient.Client(base_url=tls_mesh.gateway_url, namespace="system", key=key)
    monkeypatch.setenv(CA_VARIABLE, str(certificates.ca))
    client = apiclient.Client(base_url=tls_mesh.gateway_url, namespace="system", key=key)
    assert isinstance(client.get_instances(), list)

    home = tmp_path / "home"
    home.mkdir()
    assert write_client_config(
        home / ".shakenfist", apiurl=tls_mesh.gateway_url, namespace="system", key=key
    )
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("SHAKENFIST_")
    }
    done = subprocess.run(
        [SF_CLIENT, "--json", "instance", "list"],
        env={**environment, "HOME": str(home), CA_VARIABLE: str(certificates.ca)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "instances" in json.loads(done.stdout)


def test_grpcurl_reaches_the_api_trusting_the_ca(tls_mesh: Mesh, certificates: TlsDir) -> None:
    done = subprocess.run(
        [GRPCURL, "-cacert", str(certificates.ca), tls_mesh.address("api"), "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "sfmesh.v1.InstanceService" in done.stdout.split()


@pytest.mark.parametrize("service", sorted(INTERNAL))
def test_internal_services_answer_only_certificates_of_the_mesh(
    tls_mesh: Mesh, certificates: TlsDir, user_token: str, service: str
) -> None:
    address = tls_mesh.address(service)
    trusting = grpc.ssl_channel_credentials(root_certificates=certificates.ca.read_bytes())
    for channel in (grpc.secure_channel(address, trusting), grpc.insecure_channel(address)):
        with channel:
            call = channel.unary_unary(
                INTERNAL[service],
                request_serializer=lambda _: b"",
                response_deserializer=lambda data: data,
            )
            with pytest.raises(grpc.RpcError) as raised:
                call(None, metadata=[("authorization", f"Bearer {user_token}")], timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value
    done = subprocess.run(
        [GRPCURL, "-cacert", str(certificates.ca), address, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    with transport(certificates, "api").blocking_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
